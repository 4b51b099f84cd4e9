//! Keyset paging, newest first: how every listing pages. Unlike OFFSET it
//! stays correct while rows are being inserted: a page continues strictly
//! below the last position the previous one returned.

use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select,
};

use super::StorageError;

/// One page of a listing, newest first.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Keyset position to continue after, when there are more.
    pub next_after: Option<i64>,
}

impl<T> Page<T> {
    /// The same page with each item converted.
    pub(super) fn try_map<U, E>(self, f: impl FnMut(T) -> Result<U, E>) -> Result<Page<U>, E> {
        Ok(Page {
            items: self.items.into_iter().map(f).collect::<Result<_, _>>()?,
            next_after: self.next_after,
        })
    }
}

/// Up to `limit` rows of `query`, newest first by the keyset column `key`
/// (whose value `position` reads from a row), strictly below `after`.
pub(super) async fn newest_first<E, C>(
    query: Select<E>,
    key: E::Column,
    position: impl Fn(&E::Model) -> i64,
    after: Option<i64>,
    limit: u64,
    conn: &C,
) -> Result<Page<E::Model>, StorageError>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    let query = match after {
        Some(after) => query.filter(key.lt(after)),
        None => query,
    };
    // One extra row tells whether another page exists.
    let mut rows = query
        .order_by_desc(key)
        .limit(limit.saturating_add(1))
        .all(conn)
        .await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_after = if more {
        rows.last().map(position)
    } else {
        None
    };
    Ok(Page {
        items: rows,
        next_after,
    })
}
