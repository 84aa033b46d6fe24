/**
 * stdio links: one child process per link on the SDK's
 * `StdioClientTransport`. The child's stderr goes to the log, line by line,
 * stamped with the user, the server name and the pid. Closing ends the child:
 * SIGTERM, then SIGKILL after `killTimeout`, and waits until Node has reaped
 * it, so no zombie is left. A child that exits by itself marks the link dead.
 *
 * @internal
 * @module
 */
import { createInterface } from 'node:readline';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { OpenContext } from './http.js';
import { LinkState, connectOrClose, newClient, type McpLink } from './health.js';
import type { ResolvedTarget } from './targets.js';

/** Where a stdio server's stderr lines go. */
export type McpStderrSink = (line: string, info: { userUuid: string; server: string; pid: number | undefined }) => void;

/** Writes `[mcp <server> user=<uuid> pid=<pid>] line` to this process's stderr. */
export const defaultStderrSink: McpStderrSink = (line, info) => {
  process.stderr.write(`[mcp ${info.server} user=${info.userUuid} pid=${info.pid ?? '?'}] ${line}\n`);
};

/** Children started and ended by every stdio link of this process. */
export const stdioCounters = { started: 0, exited: 0 };

export interface StdioOpenContext extends OpenContext {
  killTimeout: number;
  stderr: McpStderrSink;
}

class StdioLink extends LinkState implements McpLink {
  readonly client: Client;
  readonly #transport: StdioClientTransport;
  readonly #killTimeout: number;
  #pid: number | undefined;
  #exited = false;
  readonly #exit: Promise<void>;
  #closing: Promise<void> | undefined;

  constructor(Transport: typeof StdioClientTransport, target: Extract<ResolvedTarget, { kind: 'stdio' }>, ctx: StdioOpenContext) {
    super();
    this.#killTimeout = ctx.killTimeout;
    this.#transport = new Transport({
      command: target.command,
      args: [...target.args],
      env: { ...target.env },
      stderr: 'pipe',
      ...(target.cwd !== undefined ? { cwd: target.cwd } : {}),
    });
    const stderr = this.#transport.stderr;
    if (stderr !== null) {
      const lines = createInterface({ input: stderr as unknown as NodeJS.ReadableStream, crlfDelay: Infinity });
      lines.on('line', (line) => ctx.stderr(line, { userUuid: ctx.userUuid, server: target.name, pid: this.#pid }));
    }
    this.client = newClient(ctx.clientInfo, this);
    let exited!: () => void;
    this.#exit = new Promise<void>((resolve) => (exited = resolve));
    // The transport's onclose fires on the child's 'close' (exited, stdio drained).
    const onclose = this.client.onclose;
    this.client.onclose = () => {
      if (!this.#exited) {
        this.#exited = true;
        if (this.#pid !== undefined) stdioCounters.exited++;
        exited();
      }
      onclose?.();
    };
  }

  /**
   * Also asks the kernel: Node reports the child's end ('close') only after
   * its pipes drained, but a reaped child is gone at once (ESRCH).
   */
  override get alive(): boolean {
    if (!super.alive) return false;
    if (this.#pid === undefined || this.#exited) return !this.#exited;
    try {
      process.kill(this.#pid, 0);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') return true;
      this.markDead('the child exited');
      return false;
    }
  }

  get sessionId(): undefined {
    return undefined;
  }

  get pid(): number | undefined {
    return this.#pid;
  }

  /** Whether the child has exited (and been reaped). */
  get exited(): boolean {
    return this.#exited;
  }

  async connect(timeout: number): Promise<void> {
    // connect() spawns the child, then runs the initialize handshake.
    const connecting = this.client.connect(this.#transport, { timeout });
    // The pid exists as soon as spawn() returned, before the handshake.
    queueMicrotask(() => this.#notePid());
    try {
      await connecting;
    } finally {
      this.#notePid();
    }
  }

  #notePid(): void {
    if (this.#pid !== undefined) return;
    const pid = this.#transport.pid ?? undefined;
    if (pid === undefined) return;
    this.#pid = pid;
    stdioCounters.started++;
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.markDead('closed');
    this.#notePid();
    if (!this.#exited && this.#pid !== undefined) {
      this.#signal('SIGTERM');
      if (!(await this.#exitWithin(this.#killTimeout))) {
        this.#signal('SIGKILL');
        await this.#exitWithin(this.#killTimeout);
      }
    }
    // The child is gone (and reaped by Node); this only clears the client's state.
    await this.client.close().catch(() => undefined);
  }

  #signal(signal: NodeJS.Signals): void {
    if (this.#exited || this.#pid === undefined) return;
    try {
      process.kill(this.#pid, signal);
    } catch {
      // Already gone.
    }
  }

  async #exitWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
      timer.unref();
    });
    try {
      return await Promise.race([this.#exit.then(() => true as const), timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * The SDK's stdio transport, loaded with the first stdio server, never by an
 * app without one: its ES module imports `node:process`, and Node then builds
 * every stdio stream of the process, `process.stdin` included (an
 * `fs.ReadStream` when stdin is /dev/null, as under most supervisors), which
 * alone made every HTTP request of the process about 3 µs slower
 * (docs/benchmarks.md, "The example app").
 */
let transportModule: Promise<typeof import('@modelcontextprotocol/sdk/client/stdio.js')> | undefined;

/** Starts the child of `target` and initialises MCP with it; rejects with `McpConnectError`. */
export function openStdioLink(target: Extract<ResolvedTarget, { kind: 'stdio' }>, ctx: StdioOpenContext): Promise<McpLink> {
  transportModule ??= import('@modelcontextprotocol/sdk/client/stdio.js');
  return transportModule.then(({ StdioClientTransport: Transport }) =>
    connectOrClose(new StdioLink(Transport, target, ctx), ctx.connectTimeout, (reason) =>
      `Could not start MCP server "${target.name}" (${target.command}) for user ${ctx.userUuid}: ${reason}. ` +
        'Check the command, its arguments and working directory in the server registry; its stderr is in the log.',
    ),
  );
}
