/**
 * Each item with its result, in order. Every layer of delivery answers a list with one result per
 * item in the same order; a length that differs is a bug, thrown rather than misattributed.
 */
export function zip<A, B> (items: readonly A[], results: readonly B[]): [A, B][] {
  if (items.length !== results.length) throw new Error(`${results.length} results for ${items.length} items`)
  // in bounds: the lengths are equal
  return items.map((item, i) => [item, results[i] as B])
}
