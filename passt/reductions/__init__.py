"""Token reductions inside the network: the block-reduction hook and its registry (`block`),
token merging (`tome`), attention pruning (`evit`), flexible patch sizes (`flex`), and the
input a strategy may read (`patch_source`). Patchout, the reduction at the input, is
`passt.patchout`."""
