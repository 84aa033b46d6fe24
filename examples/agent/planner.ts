/**
 * The planner reads the user's provider/model with no-argument getters, after
 * several awaits, as legacy code read `APP_CONFIG.CURRENT_*`.
 */
import { getUserModel, getUserProvider } from '../../src/index.js';
import { delay } from './llm.js';

export interface Plan {
  provider: string | null;
  model: string | null;
  steps: string[];
}

export async function plan(prompt: string): Promise<Plan> {
  await delay(Math.random() * 5);
  const provider = getUserProvider();
  await delay(Math.random() * 5);
  const model = getUserModel();
  await Promise.resolve();
  return { provider, model, steps: [`understand: ${prompt.slice(0, 40)}`, 'answer'] };
}
