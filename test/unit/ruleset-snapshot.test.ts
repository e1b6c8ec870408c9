import { describe, expect, it } from 'vitest';
import { dropOtherTables } from '../support/ruleset.js';

/**
 * The tests' ruleset snapshot keeps only their own namespace: another namespace's chain (another
 * test's, made or removed meanwhile) must not change it, wherever it sits in its table.
 */
const mine = { nftTable: 'elastic_aaaaaa', chainPrefix: 'ELASTIC-aaaaaa-' } as Parameters<typeof dropOtherTables>[1];
const ours = '\tchain ELASTIC-aaaaaa-FORWARD {\n\t\taccept\n\t}';
const theirs = '\tchain ELASTIC-bbbbbb-FORWARD {\n\t\taccept\n\t}';
const alone = `table ip filter {\n${ours}\n}\n`;

describe('dropOtherTables', () => {
  it.each([
    ['another chain after ours (the last of the table)', `table ip filter {\n${ours}\n\n${theirs}\n}\n`],
    ['another chain before ours', `table ip filter {\n${theirs}\n\n${ours}\n}\n`],
    ['another namespace table after', `${alone}table ip elastic_bbbbbb {\n\tchain x {\n\t}\n}\n`],
  ])('%s: the same snapshot as ours alone', (_, text) => {
    expect(dropOtherTables(text, mine)).toBe(dropOtherTables(alone, mine));
  });
});
