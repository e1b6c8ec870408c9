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

  // A description is paragraphs (blank-line separated) that oclif wraps to the terminal; a line
  // break inside a sentence in the source is wrapped again by oclif into ragged half-empty lines.
  it.each(ours.filter(([, c]) => c.pluginName === 'elastic-lb'))('%s: the description has no line break inside a paragraph', (_id, cmd) => {
    for (const para of (cmd.description ?? '').split(/\n\s*\n/)) {
      const lines = para.split('\n');
      for (const line of lines.slice(1)) expect(line, `in: ${para}`).toMatch(/^\s*(- |\* |\d+\. )/);
    }
  });

  it.each(ours.filter(([, c]) => c.pluginName === 'elastic-lb').map(([id]) => [id]))('%s --help at 80 columns: wrapped by oclif, no ragged lines', async (id) => {
    const r = await elastic([...id.split(':'), '--help'], { env: { COLUMNS: '80' } });
    expect(r.exitCode).toBe(0);
    const out = String(r.stdout).split('\n');
    const from = out.indexOf('DESCRIPTION');
    expect(from).toBeGreaterThan(-1);
    const desc = out.slice(from + 1, out.findIndex((l, i) => i > from && /^[A-Z]+$/.test(l)));
    for (const [i, line] of desc.entries()) {
      expect(line.length, line).toBeLessThanOrEqual(80);
      // A line that ends a wrapped line of a paragraph (the next line continues it) is nearly full.
      const next = desc[i + 1] ?? '';
      if (next.trim() && !/^\s*(- |\* |\d+\. )/.test(next.trim()) && line.trim()) expect(line.length + (next.trim().split(' ')[0] ?? '').length, `ragged: "${line}"`).toBeGreaterThan(70);
    }
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
