// Operations commands: shell completions and the man page (generated from the program itself).
import type { Command } from 'commander';
import { invalid } from '../../core/model/errors.js';
import { runAction } from '../context.js';
import { LOG_LEVELS, configureLogging, isLogLevel } from '../../core/log.js';
import { bashCompletion, describeProgram, fishCompletion, manPage, zshCompletion } from '../shell.js';

const SHELLS = { bash: bashCompletion, zsh: zshCompletion, fish: fishCompletion } as const;

/** The man page's date: SOURCE_DATE_EPOCH when set (reproducible package builds), else today. */
function manDate(env: NodeJS.ProcessEnv): string {
  const epoch = Number(env.SOURCE_DATE_EPOCH);
  return (Number.isFinite(epoch) && env.SOURCE_DATE_EPOCH ? new Date(epoch * 1000) : new Date()).toISOString().slice(0, 10);
}

export const MAN_SECTIONS = [
  { title: 'Exit status', body: '0 ok; 1 runtime failure (exhausted pool, address taken, host command failed, doctor found something that blocks enforcement); 2 usage or validation error; 3 plan --exit-code with changes pending.' },
  { title: 'Environment', body: 'IPVISOR_DB: the store path (like --db). IPVISOR_ACTOR: the name written to the audit log. IPVISOR_LOG_LEVEL: like --log-level. IPVISOR_NETNS: run every host command inside this network namespace.' },
  { title: 'Files', body: '/var/lib/ipvisor/ipvisor.db: the store (as root). /etc/libvirt/hooks/network.d/ipvisor and qemu.d/ipvisor: the libvirt hooks. /lib/systemd/system/ipvisor-serve.service, ipvisor-server.service, ipvisor-agent.service: the units.' },
  { title: 'See also', body: 'nft(8), ip(8), systemd.exec(5). /usr/share/doc/ipvisor/ holds the documentation (operations.md, host.md, libvirt.md, xapi.md, guest.md, errors.md).' },
];

export function registerOpsCommands(program: Command, version: string): void {
  // --log-level: global, applied before any action runs (IPVISOR_LOG_LEVEL is the default)
  program.option('--log-level <level>', `log level: ${LOG_LEVELS.join(', ')} (default: $IPVISOR_LOG_LEVEL, else info)`);
  program.hook('preAction', (_program, action) => {
    const lvl = (action.optsWithGlobals() as { logLevel?: string }).logLevel;
    if (lvl === undefined) return;
    if (!isLogLevel(lvl)) throw invalid('log-level', `'${lvl}' is not one of ${LOG_LEVELS.join(', ')}`);
    configureLogging({ level: lvl });
  });

  program
    .command('doctor')
    .description('check this host for what keeps ipvisor from enforcing (tools, forwarding, br_netfilter, firewalls, store); exit 1 when something blocks enforcement')
    .action(
      runAction(async (ctx) => {
        const { runDoctor, formatFinding } = await import('../../agent/doctor.js');
        const { createHostRunner } = await import('../../agent/host/exec.js');
        const { defaultStorePath } = await import('../../core/store/open.js');
        const { SCHEMA_VERSION } = await import('../../core/store/sqlite/migrations.js');
        const res = await runDoctor({ runner: createHostRunner(), storePath: ctx.dbPath ?? defaultStorePath(ctx.io.env), openStore: () => ctx.store(), schemaVersion: SCHEMA_VERSION, libvirtNetworkConf: ctx.io.env.IPVISOR_LIBVIRT_NETWORK_CONF });
        return { json: res, text: res.findings.map(formatFinding).join('\n'), exitCode: res.blocking ? 1 : 0 };
      }),
    );


  program
    .command('completion')
    .description('print the shell completion script (bash, zsh or fish)')
    .argument('<shell>', 'bash, zsh or fish')
    .action(
      runAction(async (_ctx, shell: string) => {
        const gen = SHELLS[shell as keyof typeof SHELLS];
        if (!gen) throw invalid('shell', `'${shell}' is not one of bash, zsh, fish`);
        const text = gen(describeProgram(program));
        return { json: { shell, script: text }, text: text.replace(/\n$/, '') };
      }),
    );

  program
    .command('man')
    .description('print the man page (roff; `ipvisor man | man -l -`)')
    .action(
      runAction(async (ctx) => {
        const text = manPage(describeProgram(program), { version, date: manDate(ctx.io.env), sections: MAN_SECTIONS });
        return { json: { page: text }, text: text.replace(/\n$/, '') };
      }),
    );
}
