// Unpacks one layer into the graph, recording its tar-split on the way, and checks that
// the tar-split rebuilds the exact tar. Pull and load both come through here.
//
// Order, for power cuts: the tar-split (built in memory) is written durably into the
// layer before layer.json; layer.json only names it (LayerRecord.tarSplit) once the rebuilt tar has
// hashed to the diff_id (Graph.settleLayerBlobs, in the background after the pull or load:
// it reads the whole layer again); blobs are removed (by gc's rule) only after that. So at
// every point either the blob or a verified tar-split exists.
import type { Readable } from 'node:stream';
import { TarSplitWriter, type Graph } from '../minimal-graph';
import type { Digest } from '../minimal-graph/types';
import { logger } from '../util/log';
import { applyLayer } from './layer-apply';

const log = logger('pull');

export interface RegisterLayerOptions {
  chainId: Digest;
  diffId: Digest;
  parent?: Digest;
  whiteoutFormat: 'overlay' | 'none';
  maxBytes?: number;
}

export async function registerLayer(graph: Graph, input: Readable, opts: RegisterLayerOptions): Promise<void> {
  const temp = await graph.layers.beginCreate();
  const tarSplit = new TarSplitWriter();
  try {
    const result = await applyLayer(input, temp, { whiteoutFormat: opts.whiteoutFormat, maxBytes: opts.maxBytes, expectedDiffId: opts.diffId, tarSplit });
    const { record, failure } = await tarSplit.finish();
    if (failure) log.info('layer tar layout not recorded; keeping its blob', { chainId: opts.chainId, reason: failure });
    await graph.layers.commitCreate(temp, {
      chainId: opts.chainId, diffId: opts.diffId, ...(opts.parent ? { parent: opts.parent } : {}), size: result.size,
      whiteouts: result.whiteouts, opaques: result.opaques, whiteoutFormat: opts.whiteoutFormat,
    }, { tarSplit: record });
  } catch (err) {
    tarSplit.abort();
    await graph.layers.abortCreate(temp).catch(() => {});
    throw err;
  }
}
