// One gate for every test that needs root or a tool: a reason to skip is returned as is, except in
// CI (IPVISOR_TEST_NO_SKIP=1, set by .ci/run), where a missing prerequisite is a failure: a CI machine
// without root or a package must not pass with the enforcement suites skipped.
export function skipUnless(reason: string | null | false | undefined): string | false {
  if (!reason) return false;
  if (process.env.IPVISOR_TEST_NO_SKIP === '1') {
    throw new Error(`test prerequisite missing under IPVISOR_TEST_NO_SKIP=1: ${reason}`);
  }
  return reason;
}

/** For tests that decide to skip at run time (t.skip). */
export function skipTest(t: { skip(msg?: string): void }, reason: string): void {
  skipUnless(reason);
  t.skip(reason);
}

/** A test that does not apply to this configuration (a PostgreSQL-only race on the SQLite run): a
 * skip that is no missing prerequisite, so it stays a skip under IPVISOR_TEST_NO_SKIP=1. */
export function notApplicable(reason: string | null | false | undefined): string | false {
  return reason || false;
}
