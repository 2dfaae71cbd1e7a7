// MQTT topic-filter matching for retained messages (MQTT 3.1.1 section 4.7): a test for one
// topic, and a level trie that answers a filter without scanning every retained topic.

/** True if the first level of `topic` starts with "$" (e.g. "$SYS/broker/load"). */
function isDollarTopic(topic: string): boolean {
  return topic.charCodeAt(0) === 0x24;
}

/**
 * Whether `topic` (a topic name, no wildcards) matches `filter`. `+` matches exactly one level
 * (an empty one too), `#` matches its parent level and everything below it.
 */
export function topicMatches(filter: string, topic: string): boolean {
  // [MQTT-4.7.2-1] a filter starting with a wildcard does not match topics starting with "$".
  const f0 = filter.charCodeAt(0);
  if ((f0 === 0x2b /* + */ || f0 === 0x23 /* # */) && isDollarTopic(topic)) return false;
  const fl = filter.split("/");
  const tl = topic.split("/");
  for (let i = 0; i < fl.length; i++) {
    const f = fl[i];
    // [MQTT-4.7.1-2] "sport/#" also matches "sport": # covers the parent level.
    if (f === "#") return true;
    if (i >= tl.length) return false;
    if (f !== "+" && f !== tl[i]) return false;
  }
  return fl.length === tl.length;
}

/** Characters that carry a meaning in a filter but may not appear in a topic name. */
export function hasWildcard(s: string): boolean {
  return s.includes("+") || s.includes("#");
}

interface Node<V> {
  children: Map<string, Node<V>>;
  value: V | undefined;
  has: boolean;
}

function node<V>(): Node<V> {
  return { children: new Map(), value: undefined, has: false };
}

/** A map from topic name to V, searchable by MQTT filter. One trie node per topic level. */
export class TopicTree<V> {
  private readonly root: Node<V> = node();
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(topic: string): V | undefined {
    let n: Node<V> | undefined = this.root;
    for (const level of topic.split("/")) {
      n = n.children.get(level);
      if (!n) return undefined;
    }
    return n.value;
  }

  set(topic: string, value: V): void {
    let n = this.root;
    for (const level of topic.split("/")) {
      let c = n.children.get(level);
      if (!c) n.children.set(level, (c = node()));
      n = c;
    }
    if (!n.has) this.count++;
    n.has = true;
    n.value = value;
  }

  delete(topic: string): boolean {
    const levels = topic.split("/");
    const path: Node<V>[] = [this.root];
    for (const level of levels) {
      const c = path[path.length - 1].children.get(level);
      if (!c) return false;
      path.push(c);
    }
    const leaf = path[path.length - 1];
    if (!leaf.has) return false;
    leaf.has = false;
    leaf.value = undefined;
    this.count--;
    // Prune the branch so a churn of short-lived topics does not grow the trie.
    for (let i = levels.length; i > 0; i--) {
      const n = path[i];
      if (n.has || n.children.size > 0) break;
      path[i - 1].children.delete(levels[i - 1]);
    }
    return true;
  }

  /** Calls `fn(topic, value)` for every stored topic that matches `filter`. */
  match(filter: string, fn: (topic: string, value: V) => void): void {
    this.walk(this.root, filter.split("/"), 0, [], fn);
  }

  private walk(n: Node<V>, fl: string[], i: number, path: string[], fn: (topic: string, value: V) => void): void {
    if (i === fl.length) {
      if (n.has) fn(path.join("/"), n.value as V);
      return;
    }
    const f = fl[i];
    if (f === "#") {
      // The parent level itself ("a/#" matches "a"), but there is no topic at the root.
      if (i > 0 && n.has) fn(path.join("/"), n.value as V);
      this.all(n, path, i === 0, fn);
      return;
    }
    if (f === "+") {
      for (const [level, c] of n.children) {
        if (i === 0 && level.charCodeAt(0) === 0x24) continue; // [MQTT-4.7.2-1]
        path.push(level);
        this.walk(c, fl, i + 1, path, fn);
        path.pop();
      }
      return;
    }
    const c = n.children.get(f);
    if (!c) return;
    path.push(f);
    this.walk(c, fl, i + 1, path, fn);
    path.pop();
  }

  private all(n: Node<V>, path: string[], atRoot: boolean, fn: (topic: string, value: V) => void): void {
    for (const [level, c] of n.children) {
      if (atRoot && level.charCodeAt(0) === 0x24) continue; // [MQTT-4.7.2-1]
      path.push(level);
      if (c.has) fn(path.join("/"), c.value as V);
      this.all(c, path, false, fn);
      path.pop();
    }
  }
}
