/**
 * The executor runs the plan on the user's LLM client. It re-reads the
 * provider/model after more awaits and checks that the client it got was
 * built for exactly that configuration.
 */
import { getRequestSignal, getUserLlmInstance, getUserModel, getUserProvider } from '../../src/index.js';
import { agentLlm, delay } from './llm.js';
import type { Plan } from './planner.js';

export interface Execution {
  provider: string | null;
  model: string | null;
  answer: string;
}

export class MismatchError extends Error {}

export async function execute(prompt: string, plan: Plan): Promise<Execution> {
  await delay(Math.random() * 5);
  const llm = agentLlm(await getUserLlmInstance());
  if (llm === null) throw new MismatchError('no LLM client for this user; POST /configure first');
  const provider = getUserProvider();
  const model = getUserModel();
  if (llm.provider !== provider || llm.model !== model || plan.provider !== provider || plan.model !== model) {
    throw new MismatchError(
      `configuration changed under the request: plan ${plan.provider}/${plan.model}, ` +
        `context ${provider}/${model}, client ${llm.provider}/${llm.model}`,
    );
  }
  // The request's signal: a client that disconnects stops the LLM call.
  const answer = await llm.complete(prompt, getRequestSignal());
  return { provider, model, answer };
}
