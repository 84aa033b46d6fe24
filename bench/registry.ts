/**
 * Every contender a server child, the ladder or the accounting can be asked
 * for by id: the middleware's (bench/contenders.ts) and the example app's
 * rows (bench/app-contenders.ts).
 */
import { APP_LADDER } from './app-contenders.js';
import { CONTENDERS, type Contender } from './contenders.js';

export const ALL_CONTENDERS: readonly Contender[] = [...CONTENDERS, ...APP_LADDER];

/** The contender named `id`; throws naming the known ones. */
export function contenderById(id: string): Contender {
  const found = ALL_CONTENDERS.find((c) => c.id === id);
  if (found === undefined) throw new Error(`unknown contender "${id}"; known: ${ALL_CONTENDERS.map((c) => c.id).join(', ')}`);
  return found;
}
