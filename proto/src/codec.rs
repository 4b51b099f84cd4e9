//! The protobuf codec the generated clients and servers use: tonic's prost
//! codec with a small initial encode buffer.
//!
//! tonic gives every call an 8 KiB encode buffer and keeps it for the life
//! of the call. A watch stream lives for hours and sends an order of a few
//! hundred bytes now and then, so with 10,000 open streams that buffer alone
//! would be 80 MiB. Starting at 1 KiB (it still grows as a message needs)
//! keeps idle streams cheap without changing the wire format.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstDecoder, ProstEncoder};

/// Initial size, and growth step, of each call's encode buffer.
pub const ENCODE_BUFFER_BYTES: usize = 1024;

/// Encoded bytes collected before a streaming call yields them to the
/// transport (tonic's default).
const YIELD_THRESHOLD_BYTES: usize = 32 * 1024;

/// A prost codec whose encoder starts with [`ENCODE_BUFFER_BYTES`].
#[derive(Debug, Clone, Copy)]
pub struct CompactCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for CompactCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for CompactCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::new(
            ENCODE_BUFFER_BYTES,
            YIELD_THRESHOLD_BYTES,
        ))
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::new(BufferSettings::default())
    }
}
