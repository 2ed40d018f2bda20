// Window-local cardinality reduction. Both functions are deterministic: they depend only on the
// set of values (and their weights) seen in the window, never on arrival order, so a window
// recomputed after a crash produces exactly the same series (see docs/aggregator.md).

/**
 * Beyla-style "low-cardinality" paths: under one prefix, when a segment position holds more than
 * `threshold` distinct values, all of them become "*". Returns a map path → collapsed path for
 * every input path (unchanged paths map to themselves).
 *   threshold 2: /u/a/x /u/b/x /u/c/y  ->  /u/* /x, /u/* /x, /u/* /y
 */
export function collapseSegments(paths: Iterable<string>, threshold: number): Map<string, string> {
  const out = new Map<string, string>();
  const items: { path: string; segs: string[] }[] = [];
  for (const p of paths) {
    if (out.has(p)) continue;
    out.set(p, p);
    items.push({ path: p, segs: p.split("/") });
  }
  // Walks the group depth by depth; `prefix` is the collapsed prefix of the group.
  const walk = (group: { path: string; segs: string[] }[], depth: number, prefix: string[]) => {
    const byChild = new Map<string, { path: string; segs: string[] }[]>();
    const done: { path: string; segs: string[] }[] = [];
    for (const it of group) {
      if (it.segs.length <= depth) {
        done.push(it);
        continue;
      }
      const s = it.segs[depth]!;
      let g = byChild.get(s);
      if (!g) byChild.set(s, (g = []));
      g.push(it);
    }
    for (const it of done) out.set(it.path, prefix.join("/"));
    if (byChild.size === 0) return;
    // "{id}" and "*" are already templates: they never count towards the threshold.
    let distinct = 0;
    for (const k of byChild.keys()) if (k !== "{id}" && k !== "*" && k !== "") distinct++;
    if (distinct > threshold) {
      const merged: { path: string; segs: string[] }[] = [];
      const keep = new Map<string, { path: string; segs: string[] }[]>();
      for (const [k, g] of byChild) {
        if (k === "") keep.set(k, g);
        else merged.push(...g);
      }
      keep.set("*", merged);
      for (const [k, g] of keep) walk(g, depth + 1, [...prefix, k]);
    } else {
      for (const [k, g] of byChild) walk(g, depth + 1, [...prefix, k]);
    }
  };
  walk(items, 0, []);
  return out;
}

/**
 * Cardinality guard for one tag: keeps the `limit` values with the most weight (ties broken by
 * value, so the result is order-independent) and maps every other value to "*".
 * Returns the value map and how many distinct values were folded.
 */
export function guardValues(weights: Map<string, number>, limit: number): { map: Map<string, string>; folded: number } {
  const map = new Map<string, string>();
  if (weights.size <= limit) {
    for (const k of weights.keys()) map.set(k, k);
    return { map, folded: 0 };
  }
  const sorted = [...weights].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  // One slot goes to "*" itself, so the tag never exceeds `limit` values in total.
  const keep = Math.max(1, limit - 1);
  let folded = 0;
  sorted.forEach(([k], i) => {
    if (i < keep || k === "*") map.set(k, k);
    else {
      map.set(k, "*");
      folded++;
    }
  });
  return { map, folded };
}
