// MQTT topics ↔ NATS subjects, as nats-server maps them (mqtt.go mqttToNATSSubjectConversion and
// natsSubjectToMQTTTopic), with the 2.10 rule for "." (2.9 refuses such topics). Every MQTT level
// becomes one NATS token:
//   - levels are joined with "." ("foo/bar" → "foo.bar");
//   - an empty level becomes the token "/" ("/foo" → "/.foo", "foo/" → "foo./", "foo//bar" → "foo./.bar");
//   - a "." inside a level becomes "//" ("foo.bar" → "foo//bar");
//   - in filters, a "+" level becomes "*" and a "#" level ">".
// "*" and ">" inside a topic are passed through unescaped, as nats-server does: a topic name
// "foo/*" is the NATS subject "foo.*", and a filter "foo/*" matches like "foo/+".
// Called per message: a topic with no empty level, no "." and no wildcard costs one scan and at
// most one replaceAll; the split/join path is for the rest.

const NUL = 0, TAB = 9, LF = 10, FF = 12, CR = 13, SPACE = 32;
const HASH = 35, PLUS = 43, DOT = 46, SLASH = 47;

/** [MQTT-1.5.3] A UTF-8 string field holds at most 65535 bytes. */
export const MAX_TOPIC_BYTES = 65535;
/** Up to this many UTF-16 units a string cannot exceed MAX_TOPIC_BYTES in UTF-8 (3 bytes each). */
const ALWAYS_SHORT_ENOUGH = Math.floor(MAX_TOPIC_BYTES / 3);

const INVALID = -1, PLAIN = 0, NO_SLASH = 1, REWRITE = 2;

/**
 * One pass over a topic name or filter. INVALID when MQTT 3.1.1 forbids it (empty, too long,
 * U+0000, not encodable as UTF-8, misplaced wildcards; `forNats` also: whitespace, which a NATS
 * subject cannot hold — nats-server refuses " ", and from 2.12 tabs, line breaks and form feeds).
 * Otherwise how to convert it: NO_SLASH (as is), PLAIN ("/" → ".") or REWRITE (level by level).
 */
function scan(topic: string, isFilter: boolean, forNats: boolean): number {
  const n = topic.length;
  if (n === 0) return INVALID; // [MQTT-4.7.3-1]
  if (n > ALWAYS_SHORT_ENOUGH && utf8Length(topic) > MAX_TOPIC_BYTES) return INVALID;
  let kind = NO_SLASH;
  let levelStart = 0;
  for (let i = 0; i < n; i++) {
    const c = topic.charCodeAt(i);
    switch (c) {
      case SLASH:
        if (i === levelStart) kind = REWRITE; // an empty level
        else if (kind === NO_SLASH) kind = PLAIN;
        levelStart = i + 1;
        break;
      case DOT:
        kind = REWRITE;
        break;
      case PLUS:
        // [MQTT-3.3.2-2] none in a topic name; [MQTT-4.7.1-3] a whole level in a filter.
        if (!isFilter || i !== levelStart || (i + 1 < n && topic.charCodeAt(i + 1) !== SLASH)) return INVALID;
        kind = REWRITE;
        break;
      case HASH:
        // [MQTT-4.7.1-2] a whole level, and the last one.
        if (!isFilter || i !== levelStart || i + 1 !== n) return INVALID;
        kind = REWRITE;
        break;
      case NUL: // [MQTT-4.7.3-2]
        return INVALID;
      case SPACE:
      case TAB:
      case LF:
      case FF:
      case CR:
        if (forNats) return INVALID;
        break;
      default:
        // [MQTT-1.5.3-1] a lone surrogate has no UTF-8 encoding.
        if (c >= 0xd800 && c <= 0xdfff) {
          if (c >= 0xdc00 || i + 1 === n) return INVALID;
          const d = topic.charCodeAt(i + 1);
          if (d < 0xdc00 || d > 0xdfff) return INVALID;
          i++;
        }
    }
  }
  if (levelStart === n) kind = REWRITE; // a trailing "/": an empty last level
  return kind;
}

function utf8Length(s: string): number {
  let bytes = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      bytes += 4; // with its low surrogate (a lone one is refused by the caller's scan)
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/**
 * The NATS subject of an MQTT topic name (`isFilter` false: PUBLISH, will topic) or topic filter
 * (true: SUBSCRIBE, UNSUBSCRIBE). Undefined when the topic is not allowed: empty, longer than
 * 65535 bytes, not valid UTF-8, holding U+0000 or whitespace; a "+" or "#" in a topic name
 * (MQTT: the server closes the connection); in a filter, a "+" or "#" that is not a whole level
 * or a "#" that is not the last level (SUBACK failure 0x80).
 * A defined result implies isValidTopicName / isValidTopicFilter.
 */
export function topicToSubject(topic: string, isFilter: boolean): string | undefined {
  const kind = scan(topic, isFilter, true);
  if (kind === NO_SLASH) return topic;
  if (kind === PLAIN) return topic.replaceAll("/", ".");
  if (kind === INVALID) return undefined;
  const levels = topic.split("/");
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i];
    if (level === "") levels[i] = "/";
    else if (isFilter && level === "+") levels[i] = "*";
    else if (isFilter && level === "#") levels[i] = ">";
    else if (level.includes(".")) levels[i] = level.replaceAll(".", "//");
  }
  return levels.join(".");
}

/**
 * The MQTT topic a NATS message is delivered on: each token is a level, the token "/" an empty
 * level, "//" inside a token a ".". Exact for every subject topicToSubject makes
 * (subjectToTopic(topicToSubject(t, false)) === t). For other subjects (NATS publishers) a "/"
 * that is not part of "//" is kept, so it separates levels (nats-server 2.10 drops it), and the
 * subject "/" becomes the topic "/" rather than an empty one. Wildcard characters in a NATS
 * subject ("k.+") pass through: check isValidTopicName if the result must be one.
 */
export function subjectToTopic(subject: string): string {
  if (subject.indexOf("/") === -1) return subject.indexOf(".") === -1 ? subject : subject.replaceAll(".", "/");
  if (subject === "/") return "/";
  const tokens = subject.split(".");
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (t === "/") tokens[i] = "";
    else if (t.includes("//")) tokens[i] = t.replaceAll("//", ".");
  }
  return tokens.join("/");
}

/**
 * For a filter ending in "/#", which MQTT also matches against its parent level ("foo/#" matches
 * "foo"), the NATS subject of that parent, which needs a subscription of its own since "foo.>"
 * does not match "foo" ("foo/#" → "foo", "foo//#" → "foo./", "/#" → "/"); undefined otherwise.
 * nats-server subscribes it with the sid suffix " fwc".
 */
export function filterNeedsParent(filter: string): string | undefined {
  const n = filter.length;
  if (n < 2 || filter.charCodeAt(n - 1) !== HASH || filter.charCodeAt(n - 2) !== SLASH) return undefined;
  const subject = topicToSubject(filter, true);
  // As nats-server: the subject without its trailing ".>".
  return subject === undefined ? undefined : subject.slice(0, -2);
}

/** MQTT 3.1.1 topic name (PUBLISH): 1 to 65535 UTF-8 bytes, no U+0000, no "+" or "#". */
export function isValidTopicName(topic: string): boolean {
  return scan(topic, false, false) !== INVALID;
}

/** MQTT 3.1.1 topic filter: as a name, but "+" may be a whole level and "#" the whole last one. */
export function isValidTopicFilter(filter: string): boolean {
  return scan(filter, true, false) !== INVALID;
}

/** What a SUBSCRIBE filter asks of the sublist: one or two subjects, and a queue group. */
export interface FilterInterest {
  /** The filter's NATS subject, then its parent's for a filter ending in "/#". */
  subjects: string[];
  /** The NATS queue group of a shared subscription (its MQTT share name), else undefined. */
  queue: string | undefined;
  /** The filter without "$share/{group}/": "+" and "#" at its start do not match "$" topics. */
  filter: string;
}

const SHARE_PREFIX = "$share/";

/**
 * The interest of an MQTT topic filter; undefined when the filter is not allowed. A shared
 * subscription `$share/{group}/{filter}` (MQTT 5 §4.8.2; mosquitto and EMQX accept it from 3.1.1
 * clients too) becomes the NATS queue group `{group}` on the filter's subjects, so MQTT shared
 * subscribers and NATS queue subscribers of that name are one group. A share name is a
 * non-empty level without "+", "#" or whitespace (a NATS queue name cannot hold whitespace).
 */
export function filterInterest(filter: string): FilterInterest | undefined {
  let queue: string | undefined;
  if (filter.startsWith(SHARE_PREFIX)) {
    const end = filter.indexOf("/", SHARE_PREFIX.length);
    if (end < 0) return undefined;
    queue = filter.slice(SHARE_PREFIX.length, end);
    if (queue === "" || /[+#\s]/.test(queue)) return undefined;
    filter = filter.slice(end + 1);
  }
  const subject = topicToSubject(filter, true);
  if (subject === undefined) return undefined;
  const parent = filterNeedsParent(filter);
  return { subjects: parent === undefined ? [subject] : [subject, parent], queue, filter };
}
