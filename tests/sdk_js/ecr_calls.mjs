// ECR calls made by the AWS SDK for JavaScript v3, for the Python tests (tests/api/test_sdk_js.py).
//
// One JSON document a line on stdin: {"client": {endpoint, region, accessKeyId, secretAccessKey},
// "operation": "CreateRepository", "input": {...}}. One line back on stdout for each:
// {"output": {...}} or {"error": {"name", "status", "message"}}, in the SDK's own terms.
// A `layerPartBlob` travels as base64 (JSON has no bytes). TLS: Node trusts NODE_EXTRA_CA_CERTS.
import * as ecr from "@aws-sdk/client-ecr";
import { createInterface } from "node:readline";

const clients = new Map();

function clientFor({ endpoint, region, accessKeyId, secretAccessKey }) {
  const key = JSON.stringify([endpoint, region, accessKeyId, secretAccessKey]);
  if (!clients.has(key)) {
    clients.set(
      key,
      new ecr.ECRClient({ endpoint, region, credentials: { accessKeyId, secretAccessKey }, maxAttempts: 1 }),
    );
  }
  return clients.get(key);
}

async function call({ client, operation, input }) {
  const Command = ecr[`${operation}Command`];
  if (!Command) throw new Error(`no such ECR operation in the SDK: ${operation}`);
  if (typeof input?.layerPartBlob === "string") input.layerPartBlob = Buffer.from(input.layerPartBlob, "base64");
  try {
    const { $metadata, ...output } = await clientFor(client).send(new Command(input));
    return { output };
  } catch (error) {
    if (!error.$metadata) throw error; // not an answer from the service
    return { error: { name: error.name, status: error.$metadata.httpStatusCode, message: error.message } };
  }
}

// One call at a time, answered in order.
for await (const line of createInterface({ input: process.stdin })) {
  process.stdout.write(JSON.stringify(await call(JSON.parse(line))) + "\n");
}
