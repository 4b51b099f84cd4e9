// A gRPC-Web client as a browser or Flutter web app would use it
// (@connectrpc/connect-web over fetch, HTTP/1.1), with message types built
// at run time from Fulfil's descriptor set: no generated code.
//
// Usage: node grpc_web_client.mjs BASE_URL DESCRIPTOR_SET_FILE
// Creates an order, watches it, cancels it, and prints what the stream
// delivered as JSON.
import { readFileSync } from "node:fs";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

const [baseUrl, descriptorFile] = process.argv.slice(2);
const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(descriptorFile)));
const orders = createClient(
  registry.getService("fulfil.v1.OrderService"),
  createGrpcWebTransport({ baseUrl }),
);

const created = await orders.createOrder({
  customerId: "web_user",
  currency: "eur",
  lineItems: [{ sku: "poster", quantity: 1n, unitAmount: 2500n }],
});

const seen = [];
const abort = new AbortController();
const stream = orders.watchOrder({ orderId: created.orderId }, { signal: abort.signal });
let cancelled = false;
try {
  for await (const message of stream) {
    if (message.event.case !== "change") continue;
    const { order, cursor } = message.event.value;
    seen.push({ version: Number(order.version), state: order.state, cursor });
    if (!cancelled) {
      cancelled = true;
      await orders.cancelOrder({ orderId: created.orderId, reason: "from the web" });
    } else {
      abort.abort();
    }
  }
} catch (err) {
  if (!abort.signal.aborted) throw err;
}
process.stdout.write(JSON.stringify({ orderId: created.orderId, seen }));
