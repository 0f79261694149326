// Run the Lambda zip under @vercel/fun (runtime "provided": it executes the
// zip's bootstrap against its own Runtime API) and invoke it with each event.
// Usage: node invoke.js ZIP ENV_JSON EVENTS_JSON  -> one JSON array of
// {StatusCode, FunctionError, Payload} on stdout, in the events' order.
'use strict';
const fs = require('fs');
const { createFunction } = require('@vercel/fun');

async function main() {
  const [zip, env, events] = process.argv.slice(2);
  const fn = await createFunction({
    Code: { ZipFile: fs.readFileSync(zip) },
    Handler: 'bootstrap',
    Runtime: 'provided',
    Environment: { Variables: JSON.parse(env) },
    MemorySize: 256,
    Timeout: 30,
  });
  const out = [];
  try {
    for (const ev of JSON.parse(fs.readFileSync(events, 'utf8'))) {
      const res = await fn.invoke({ InvocationType: 'RequestResponse', Payload: JSON.stringify(ev) });
      out.push({ StatusCode: res.StatusCode, FunctionError: res.FunctionError || null,
        Payload: String(res.Payload) });
    }
  } finally {
    await fn.destroy();
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stderr.write(`invoke.js: ${e.stack || e}\n`);
  process.exit(1);
});
