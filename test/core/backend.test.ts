import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { initBackend, startBackend } from '../../src/backend';

const installed = (pkg: string) => {
  try {
    createRequire(`${process.cwd()}/`).resolve(pkg);
    return true;
  } catch {
    return false;
  }
};

describe('backend selection', () => {
  it('rejects an unknown LENS_BACKEND with the list of valid names', async () => {
    await expect(startBackend('tpu')).rejects.toThrow(/LENS_BACKEND='tpu' is not a backend; expected one of: auto, tfjs-node-gpu, tfjs-node, webgpu, wasm, cpu/);
  });

  it.skipIf(installed('@tensorflow/tfjs-node-gpu'))('says how to install an optional backend that is absent', async () => {
    await expect(startBackend('tfjs-node-gpu')).rejects.toThrow(
      /backend 'tfjs-node-gpu' requested by LENS_BACKEND is not available: package @tensorflow\/tfjs-node-gpu is not installed \(npm install @tensorflow\/tfjs-node-gpu\)/,
    );
  });

  it('auto mode records why each earlier candidate was skipped', async () => {
    const info = await startBackend('auto');
    const order = ['tfjs-node-gpu', 'tfjs-node', 'webgpu', 'wasm', 'cpu'];
    expect(order).toContain(info.name);
    expect(Object.keys(info.skipped)).toEqual(order.slice(0, order.indexOf(info.name)));
  });

  it('starts the named backend', async () => {
    expect(await startBackend('cpu')).toMatchObject({ name: 'cpu', tfName: 'cpu', chosenBy: 'LENS_BACKEND=cpu' });
  });

  it('starts once per process: later calls return the first start, whatever they ask', async () => {
    const first = await initBackend({ name: 'cpu', quiet: true });
    expect(first.name).toBe('cpu');
    expect(await initBackend({ name: 'wasm', quiet: true })).toBe(first);
  });
});
