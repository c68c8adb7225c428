// The single entry point: `berth daemon ...` runs the daemon, every other verb is a
// client command. Both halves are loaded lazily so the CLI never pays for the engine.

async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'daemon' || argv[0] === 'dockerd') {
    const { runDaemon } = await import('../daemon/main');
    return runDaemon(argv.slice(1));
  }
  const { runCli } = await import('../cli/main');
  return runCli(argv);
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => { process.stderr.write(`berth: ${err?.stack || err}\n`); process.exitCode = 1; },
);
