import { UsageError } from './errors';

/**
 * `npx lens <command> [options]`: one entry point for every job. Each command
 * lives in its own file under src/cli/ and is loaded only when called, so
 * `lens generate` does not start a tfjs backend.
 */

/** A command: parses its own argv, returns the process exit code. */
export type Command = (argv: string[]) => Promise<number>;

interface CommandEntry {
  summary: string;
  load: () => Promise<Command>;
}

const COMMANDS: Record<string, CommandEntry> = {
  generate: { summary: 'write the generated referring-segmentation benchmark (--out DIR --scale --seed)', load: async () => (await import('./generate')).run },
  start: { summary: 'the main job: data, stages 0-2, baselines, every split scored (npm start)', load: async () => (await import('./start')).run },
  evaluate: { summary: 'score a predictions file on a split (gIoU, cIoU, box Acc@0.5)', load: async () => (await import('./evaluate')).run },
  export: { summary: 'write an initialised model (safetensors + config)', load: async () => (await import('./export')).run },
  align: { summary: 'stage 1: queries + connector on L_seg over the frozen MLLM and SAM (--from a pretrain run)', load: async () => (await import('./align')).run },
  grpo: { summary: 'stage 2: GRPO with unified rewards + L_seg (--from an align run)', load: async () => (await import('./grpo')).run },
  'train-baseline': { summary: 'train a baseline from a stage-0 run: lisa (supervised [SEG]) or segzero (RL on format + box, frozen SAM)', load: async () => (await import('./train-baseline')).run },
  pretrain: { summary: 'stage 0: mini-SAM on box / point prompts (0a), MLLM SFT on the LENS format (0b)', load: async () => (await import('./pretrain')).run },
  ablate: { summary: 'the paper\'s ablation tables 3-5 (queries | connector | rewards) over seeds, with the paper\'s numbers and a verdict', load: async () => (await import('./ablate')).run },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(16)}${c.summary}`);
  return `usage: lens <command> [options]\n\ncommands:\n${lines.join('\n')}\n\n'lens <command> --help' for a command's options.`;
}

export { UsageError } from './errors';

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name === undefined ? 2 : 0;
  }
  const entry = COMMANDS[name];
  if (!entry) {
    console.error(`lens: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  try {
    const run = await entry.load();
    return await run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`lens ${name}: ${e.message}`);
      return 2;
    }
    // Data, config and backend errors name the file / field; show the message, not a stack.
    const err = e as Error;
    console.error(`lens ${name}: ${err.name && err.name !== 'Error' ? `${err.name}: ` : ''}${err.message}`);
    if (process.env.LENS_DEBUG) console.error(err.stack);
    return 1;
  }
}
