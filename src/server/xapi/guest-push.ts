// Fills the XAPI seam of the guest push (core/guest/push-port.ts: setXapiGuestPush) so `ipvisor guest push VM`
// on an XAPI VM sets its addresses through VIF.configure_ipv4/6. The seam carries no store, so the
// CLI tells us which store the running command uses.
import { setXapiGuestPush, type PushResult } from '../../core/guest/push-port.js';
import type { Store } from '../../core/store/store.js';
import { pushStaticIpViaXapi } from './static-ip.js';

export function registerXapiGuestPush(openStore: () => Promise<{ store: Store; close(): Promise<void> }>): void {
  setXapiGuestPush(async (vmUuid, _doc, opts) => {
    const { store, close } = await openStore();
    try {
      const r = await pushStaticIpViaXapi(store, vmUuid, { dryRun: opts.dryRun });
      for (const c of r.configured) opts.log?.(`${opts.dryRun ? 'would configure' : 'configured'} ${c.vif}: Static ${c.address}${c.gateway ? ` gateway ${c.gateway}` : ''}`);
      const files = Object.fromEntries(r.configured.map((c) => [`xapi:${c.vif}/ipv${c.family}`, `Static ${c.address}${c.gateway ? ` gateway ${c.gateway}` : ''}\n`]));
      const result: PushResult = {
        plan: { os: 'xapi', format: 'xapi' as never, files, applyScript: '', rollbackScript: null },
        applied: !opts.dryRun && r.configured.length > 0,
        interfaces: [],
      };
      return result;
    } finally {
      await close();
    }
  });
}
