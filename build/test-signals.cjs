// Preloaded into every test process: a SIGTERM (from the runner's timeouts, or Ctrl-C)
// becomes a normal exit, so the helpers' 'exit' handlers still stop the daemons,
// registries and brokers the tests started, instead of leaving them orphaned.
'use strict';
for (const signal of ['SIGTERM', 'SIGINT']) process.once(signal, () => process.exit(signal === 'SIGTERM' ? 143 : 130));
