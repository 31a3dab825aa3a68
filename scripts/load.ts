/**
 * `npm run load -- <scenario> --profile <profile> [options]`: the load scenarios of loadtests/k6
 * run by the Node driver (loadtests/driver), for machines without k6 — same profiles, same
 * thresholds, exit code 99 when one fails. `--help` lists the options.
 */
import { main } from '../loadtests/driver/run.ts';

const controller = new AbortController();
let interrupts = 0;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    // the first stops the run and still writes the reports; the second leaves at once
    if (++interrupts > 1) process.exit(130);
    process.stderr.write(`\n${sig}: stopping the run (again to quit at once)\n`);
    controller.abort();
  });
}

process.exitCode = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, signal: controller.signal });
