// The single entry point: `berth daemon ...` runs the daemon, every other verb is a
// client command. Both halves are loaded lazily so the CLI never pays for the engine.

async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'daemon' || argv[0] === 'dockerd') {
    const { runDaemon } = await import('../daemon/main');
    return runDaemon(argv.slice(1));
  }
  // A closed pipe (`berth events | head`) ends the CLI as SIGPIPE ends a C or Go tool.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(141);
    throw err;
  });
  const { runCli } = await import('../cli/main');
  return runCli(argv);
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => { process.stderr.write(`berth: ${err?.stack || err}\n`); process.exitCode = 1; },
);
