/**
 * The token usage an answer of the wire server reported, read back from what
 * it wrote (the JSON body, or the stream's frames: SSE `data:` lines, AWS
 * event-stream messages), in whichever provider format: so a test compares
 * what a client booked with what the "provider" billed, not with a copy of
 * the server's arithmetic.
 */

export interface ReportedUsage {
  inputTokens: number;
  outputTokens: number;
}

const INPUT = new Set(['prompt_tokens', 'input_tokens', 'promptTokenCount', 'inputTokens']);
const OUTPUT = new Set(['completion_tokens', 'output_tokens', 'candidatesTokenCount', 'outputTokens']);

/** The usage in written payloads (later reports win, as a streaming client reads them). */
export function usageReported(written: ReadonlyArray<string | Buffer | unknown>): ReportedUsage {
  const usage: ReportedUsage = { inputTokens: 0, outputTokens: 0 };
  const walk = (value: unknown): void => {
    if (value === null || typeof value !== 'object') return;
    for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
      if (typeof v === 'number' && INPUT.has(key)) usage.inputTokens = v;
      else if (typeof v === 'number' && OUTPUT.has(key)) usage.outputTokens = v;
      else walk(v);
    }
  };
  for (const item of written) {
    if (typeof item === 'string') {
      for (const line of item.split('\n')) {
        if (line.startsWith('data: ') && line !== 'data: [DONE]') walk(JSON.parse(line.slice(6)));
      }
    } else if (Buffer.isBuffer(item)) {
      // AWS event stream: 12-byte prelude (total length, headers length, CRC), headers, JSON payload, CRC.
      const total = item.readUInt32BE(0);
      const headers = item.readUInt32BE(4);
      walk(JSON.parse(item.subarray(12 + headers, total - 4).toString('utf8')));
    } else {
      walk(item);
    }
  }
  return usage;
}
