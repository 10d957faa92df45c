// Shell completions and the man page come from the commander program: every command is in each
// script, each script parses in its shell, and completing a partial command line offers the right words.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VERSION, buildProgram } from '../../src/cli/main.js';
import { allCommands, describeProgram } from '../../src/cli/shell.js';
import { cli, tempDb } from '../support/cli.js';
import { skipUnless } from '../support/skip.js';

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const spec = describeProgram(buildProgram({ stdout: () => {}, stderr: () => {}, env: {} }));
const paths = allCommands(spec).map((c) => c.path);

async function script(shell: string): Promise<{ file: string; text: string; done: () => void }> {
  const { db, cleanup } = tempDb();
  const r = await cli(db, 'completion', shell);
  assert.equal(r.code, 0, r.stderr);
  const dir = mkdtempSync(join(tmpdir(), 'ipvisor-compl-'));
  const file = join(dir, `ipvisor.${shell}`);
  writeFileSync(file, r.stdout);
  return { file, text: r.stdout, done: () => { cleanup(); rmSync(dir, { recursive: true, force: true }); } };
}

test('--version prints the version of package.json', async () => {
  const { db, cleanup } = tempDb();
  try {
    const r = await cli(db, '--version');
    assert.equal(r.code, 0);
    assert.equal(r.stdout.trim(), VERSION);
    assert.equal(JSON.parse(readFileSync('package.json', 'utf8')).version, VERSION);
  } finally {
    cleanup();
  }
});

test('completion: an unknown shell is a usage error naming the field', async () => {
  const { db, cleanup } = tempDb();
  try {
    const r = await cli(db, 'completion', 'tcsh');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^ipvisor: shell: 'tcsh' is not one of bash, zsh, fish/);
  } finally {
    cleanup();
  }
});

test('the program has the commands the scripts are checked against', () => {
  for (const p of ['ipvisor network create', 'ipvisor pool create', 'ipvisor ip allocate', 'ipvisor libvirt install', 'ipvisor completion']) assert.ok(paths.includes(p), p);
  assert.ok(paths.length > 50);
});

for (const shell of ['bash', 'zsh', 'fish']) {
  test(`${shell} completion mentions every command and parses`, { skip: skipUnless(!has(shell) && `${shell} is not installed (apt-get install ${shell})`) }, async () => {
    const s = await script(shell);
    try {
      for (const p of paths) assert.ok(s.text.includes(`'${p}'`), `${shell}: ${p} missing`);
      for (const c of allCommands(spec)) for (const o of c.options) if (o.long) assert.ok(s.text.includes(shell === 'fish' ? `-l ${o.long.slice(2)}` : o.long), `${shell}: ${c.path} ${o.long} missing`);
      const r = spawnSync(shell, ['-n', s.file], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
    } finally {
      s.done();
    }
  });
}

test('bash completion completes subcommands and options at the right level', { skip: skipUnless(!has('bash') && 'bash is not installed') }, async () => {
  const s = await script('bash');
  try {
    const complete = (words: string[]) => {
      const r = spawnSync('bash', ['-c', `source "$1"; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _ipvisor; printf '%s\\n' "\${COMPREPLY[@]}"`, 'x', s.file], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout.split('\n').filter(Boolean);
    };
    assert.deepEqual(complete(['ipvisor', 'network', 'cr']), ['create']);
    assert.deepEqual(complete(['ipvisor', 'network', 'host-address', '']).sort(), ['add', 'list', 'remove']);
    // a global option's value is not taken for a command name
    assert.deepEqual(complete(['ipvisor', '--db', 'pool', 'pool', 'cr']), ['create']);
    const opts = complete(['ipvisor', 'pool', 'create', 'p1', '--']);
    for (const o of ['--network', '--cidr', '--exclude', '--json', '--db', '--help']) assert.ok(opts.includes(o), o);
    assert.ok(!opts.includes('--bridge'), 'a network option offered for pool create');
  } finally {
    s.done();
  }
});

test('zsh completion offers the words of the command line it is at', { skip: skipUnless(!has('zsh') && 'zsh is not installed (apt-get install zsh)') }, async () => {
  const s = await script('zsh');
  try {
    // _describe is replaced by a function printing the array it was given (the last argument).
    const complete = (words: string[]) => {
      const r = spawnSync('zsh', ['-f', '-c', `compdef() { :; }; _files() { :; }; _describe() { print -l -- "\${(@P)\${@[-1]}}"; }; source "$1"; words=(${words.map((w) => `'${w}'`).join(' ')}); CURRENT=${words.length}; _ipvisor`, "zsh", s.file], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout.split('\n').filter(Boolean).map((l) => l.replace(/(?<!\\):.*$/, ''));
    };
    assert.ok(complete(['ipvisor', 'network', '']).includes('create'));
    assert.ok(complete(['ipvisor', 'pool', 'create', 'p', '-']).includes('--cidr'));
    assert.ok(!complete(['ipvisor', 'pool', 'create', 'p', '-']).includes('--bridge'));
  } finally {
    s.done();
  }
});

test('fish completion completes subcommands and options', { skip: skipUnless(!has('fish') && 'fish is not installed (apt-get install fish)') }, async () => {
  const s = await script('fish');
  try {
    const complete = (line: string) => {
      const r = spawnSync('fish', ['--no-config', '-c', `source $argv[1]; complete -C '${line}'`, s.file], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout.split('\n').filter(Boolean).map((l) => l.split('\t')[0]);
    };
    assert.deepEqual(complete('ipvisor network cr'), ['create']);
    assert.ok(complete('ipvisor pool create p --').includes('--cidr'));
    assert.ok(!complete('ipvisor pool create p --').includes('--bridge'));
  } finally {
    s.done();
  }
});

test('man page lists every leaf command and renders without groff warnings', { skip: skipUnless(!has('groff') && 'groff is not installed (apt-get install groff-base)') }, async () => {
  const { db, cleanup } = tempDb();
  try {
    const r = await cli(db, 'man');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^\.TH IPVISOR 1 /m);
    for (const c of allCommands(spec).slice(1)) if (!c.commands.length) assert.ok(r.stdout.includes(`.B ${c.path.replace(/-/g, '\\-')}`), c.path);
    const g = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z'], { input: r.stdout, encoding: 'utf8' });
    assert.equal(g.status, 0);
    assert.equal(g.stderr, '', g.stderr);
  } finally {
    cleanup();
  }
});
