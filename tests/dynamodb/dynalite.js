// Start dynalite (in memory) on 127.0.0.1 with an ephemeral port and print
// "PORT\n" on stdout once it listens; stop on SIGTERM/SIGINT or when the launcher goes away.
'use strict';
const path = require('path');
const dynalite = require(path.join(__dirname, 'node_modules', 'dynalite'));

const createMs = Number(process.env.DYNALITE_CREATE_TABLE_MS || 50);
const server = dynalite({ createTableMs: createMs, deleteTableMs: createMs, updateTableMs: createMs });
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(server.address().port + '\n');
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// Never outlive the launcher, even when it is killed without a chance to clean up.
const parent = process.ppid;
setInterval(() => { if (process.ppid !== parent) process.exit(0); }, 500).unref();
