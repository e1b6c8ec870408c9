import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { elastic } from '../support/cli.js';

/** Every command explains itself: a summary, a description and examples in --help. */
const manifest = JSON.parse(readFileSync(new URL('../../oclif.manifest.json', import.meta.url), 'utf8')) as {
  commands: Record<string, { summary?: string; description?: string; examples?: unknown[]; pluginName?: string }>;
};
const ours = Object.entries(manifest.commands);

describe('CLI help', () => {
  it('has commands', () => expect(ours.map(([id]) => id)).toContain('discover'));

  it.each(ours)('%s has a summary, a description and examples', (_id, cmd) => {
    expect(cmd.summary ?? cmd.description).toBeTruthy();
    expect(cmd.description).toBeTruthy();
    expect(cmd.examples?.length ?? 0).toBeGreaterThan(0);
  });

  it('--version answers fast-path text without loading oclif, the same as oclif would', async () => {
    const r = await elastic(['--version']);
    expect(r.exitCode).toBe(0);
    expect(String(r.stdout)).toMatch(/^elastic-lb\/\d+\.\d+\.\d+ linux-x64 node-v\d+/);
  });

  it('help lists the commands and autocomplete', async () => {
    const r = await elastic(['--help']);
    expect(String(r.stdout)).toMatch(/discover/);
    expect(String(r.stdout)).toMatch(/autocomplete/);
  });
});
