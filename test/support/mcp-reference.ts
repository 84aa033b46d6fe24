/**
 * The MCP project's reference servers (devDependencies) for the tests: where
 * their entry scripts are, server-everything in Streamable HTTP mode as a
 * child on a fixed port (so it can be restarted on it), and what /proc says
 * about this process's children and file descriptors.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { MEMORY_TOOLS, referenceServerBin } from '../../examples/mcp-servers.js';

/** Absolute path of the entry script of a reference server. */
export const referenceBin = referenceServerBin;

/** server-everything's tools used by the tests. */
export const EVERYTHING = { echo: 'echo', env: 'get-env', slow: 'trigger-long-running-operation' } as const;

export { MEMORY_TOOLS };

/** A running server-everything in Streamable HTTP mode. */
export interface EverythingHttp {
  readonly url: string;
  readonly pid: number;
  /** Sessions the server closed after a DELETE (from its log). */
  readonly terminated: number;
  /** Sessions it initialised (from its log). */
  readonly initialised: number;
  stop(): Promise<void>;
}

/** Starts `server-everything streamableHttp` on 127.0.0.1-reachable `port`; resolves once it listens. */
export async function startEverythingHttp(port: number): Promise<EverythingHttp> {
  const child: ChildProcess = spawn(process.execPath, [referenceBin('server-everything'), 'streamableHttp'], {
    env: { PATH: process.env['PATH'] ?? '', PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let terminated = 0;
  let initialised = 0;
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
  child.stdout!.on('data', (chunk: Buffer) => {
    const text = chunk.toString();
    terminated += text.split('Received session termination request').length - 1;
    initialised += text.split('Session initialized with ID').length - 1;
  });
  await new Promise<void>((resolve, reject) => {
    let log = '';
    const timer = setTimeout(() => reject(new Error(`server-everything did not listen on ${port}: ${log}`)), 15_000);
    child.stderr!.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes('listening on port')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server-everything exited with ${code}: ${log}`));
    });
  });
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    pid: child.pid!,
    get terminated() {
      return terminated;
    },
    get initialised() {
      return initialised;
    },
    async stop() {
      if (!exited) child.kill('SIGKILL');
      await exit;
    },
  };
}

/** Live (not zombie) and zombie children of this process, from /proc. */
export function childProcesses(): { live: number[]; zombies: number[] } {
  const live: number[] = [];
  const zombies: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    // pid (comm) state ppid …; comm may contain spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[1]) !== process.pid) continue;
    (fields[0] === 'Z' ? zombies : live).push(Number(name));
  }
  return { live, zombies };
}

/** Whether process `pid` exists (and is not a zombie). */
export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Open file descriptors of this process. */
export function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Polls `check` until it returns true (every 20 ms), or throws after `timeoutMs`. */
export async function until(check: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The text of the first content item of a tool result. */
export function textOf(result: { content?: unknown }): string {
  const first = (result.content as { type: string; text?: string }[] | undefined)?.[0];
  return first?.text ?? '';
}
