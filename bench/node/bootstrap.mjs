// A Lambda custom runtime loop (as `provided` runtimes run one): fetch the next event from the
// Runtime API, run the handler named by _HANDLER, post its answer. Node's own Lambda runtime does
// the same; this keeps the peer free of native add-ons.
import * as handlers from "./handlers.mjs";

const api = `http://${process.env.AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation`;
const handler = handlers[process.env._HANDLER];

for (;;) {
  const next = await fetch(`${api}/next`);
  const requestId = next.headers.get("lambda-runtime-aws-request-id");
  const event = await next.json();
  try {
    const result = await handler(event);
    await fetch(`${api}/${requestId}/response`, { method: "POST", body: JSON.stringify(result) });
  } catch (error) {
    await fetch(`${api}/${requestId}/error`, {
      method: "POST",
      body: JSON.stringify({ errorType: error.name, errorMessage: String(error.message) }),
    });
  }
}
