import { parseArgs, type ParseArgsConfig } from 'node:util';

/** Thrown for bad command-line input: printed without a stack, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * node:util `parseArgs` in strict mode, every command's way: an unknown flag, a missing
 * value or (unless `positionals`) a bare argument becomes a UsageError carrying the
 * command's help text.
 */
export function parseFlags<const O extends Options>(
  args: string[],
  options: O,
  help: string,
  { positionals = false }: { positionals?: boolean } = {},
): ReturnType<typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: true }>> {
  let parsed;
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: true });
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n\n${help}`);
  }
  if (!positionals && parsed.positionals.length > 0) throw new UsageError(`unexpected argument '${parsed.positionals[0]}'\n\n${help}`);
  return parsed;
}
