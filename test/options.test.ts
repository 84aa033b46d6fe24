/** Unknown options are refused with a TypeError naming the option and the closest valid one. */
import { describe, expect, it } from 'vitest';
import { ContextStore } from '../src/index.js';
import { RedisContextStore } from '../src/redis.js';

describe('unknown options', () => {
  it('ContextStore refuses a misspelt option and suggests the right one', () => {
    expect(() => new ContextStore({ ttll: 1000 } as never)).toThrow(/unknown option "ttll"; did you mean "ttl"\?/);
    expect(() => new ContextStore({ sweepIntervall: 1 } as never)).toThrow(/did you mean "sweepInterval"/);
    expect(() => new ContextStore({ isRevoked: () => false } as never)).toThrow(/unknown option "isRevoked"/);
  });

  it('resource specs refuse unknown keys', () => {
    expect(() => new ContextStore({ resources: { llmInstance: { create: () => ({}), dependOn: ['provider'] } } } as never)).toThrow(
      /options\.resources\.llmInstance: unknown option "dependOn"; did you mean "dependsOn"\?/,
    );
  });

  it('RedisContextStore takes its own options and the in-memory ones, and refuses others', () => {
    expect(() => new RedisContextStore({ redis: 'redis://127.0.0.1:1', keyPrefx: 'a:', secretFields: [] } as never)).toThrow(
      /new RedisContextStore\(options\): unknown option "keyPrefx"; did you mean "keyPrefix"\?/,
    );
  });
});
