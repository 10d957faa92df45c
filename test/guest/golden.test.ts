// Golden files for every corpus document and every format; negative documents must be rejected
// with an error naming their fault. IPVISOR_UPDATE_GOLDEN=1 rewrites the files; a missing one fails.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { IpvisorError } from '../../src/core/model/errors.js';
import { parseNetworkData } from '../../src/core/guest/parse.js';
import { GUEST_FORMATS, render } from '../../src/core/guest/render.js';
import { loadCorpus, REJECTED } from './corpus.js';
import { assertGoldenDir } from '../support/golden.js';

const GOLDEN = new URL('./golden/', import.meta.url).pathname;

for (const c of loadCorpus()) {
  test(`golden: ${c.name}`, () => {
    const docDir = join(GOLDEN, c.name);
    if (REJECTED[c.name]) {
      assert.throws(
        () => parseNetworkData(c.doc, { nicNames: c.nics }),
        (e: unknown) => e instanceof IpvisorError && e.code === 'VALIDATION' && REJECTED[c.name]!.test(e.message),
      );
      return;
    }
    const state = parseNetworkData(c.doc, { nicNames: c.nics });
    for (const format of GUEST_FORMATS) {
      const files = render(state, format);
      assertGoldenDir(join(docDir, format), files);
    }
  });
}
