// Signs Stripe test payloads with the official `stripe` package.
// stdin: JSON array of {secret, payload, timestamp}; stdout: JSON array of
// Stripe-Signature header values, in the same order.
import Stripe from "stripe";

const stripe = new Stripe("sk_test_unused");
let input = "";
for await (const chunk of process.stdin) input += chunk;
const headers = JSON.parse(input).map(({ secret, payload, timestamp }) =>
  stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp }),
);
process.stdout.write(JSON.stringify(headers));
