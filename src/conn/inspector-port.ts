// Finding a Node process's inspector: the TCP listeners that really belong
// to that pid (a socket inode in /proc/<pid>/net/tcp* that is also one of
// its open fds), and of those, the one that answers /json/list.
import { promises as fs } from 'node:fs';
import { request } from 'node:http';

export interface Listener {
  readonly address: string;
  readonly port: number;
  readonly inode: number;
}

const TCP_LISTEN = '0A';

function ipv4(hex: string): string {
  const n = Number.parseInt(hex, 16);
  return [n & 255, (n >> 8) & 255, (n >> 16) & 255, (n >>> 24) & 255].join('.');
}

/** Listening TCP sockets of the pid's network namespace, from /proc/<pid>/net/tcp and tcp6. */
export async function listeningSockets(pid: number): Promise<Listener[]> {
  const listeners: Listener[] = [];
  for (const file of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = await fs.readFile(`/proc/${pid}/net/${file}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10 || fields[3] !== TCP_LISTEN) continue;
      const [addressHex, portHex] = (fields[1] ?? '').split(':');
      if (!addressHex || !portHex) continue;
      const address = file === 'tcp' ? ipv4(addressHex) : addressHex === '00000000000000000000000001000000' ? '::1' : `[${addressHex}]`;
      listeners.push({ address, port: Number.parseInt(portHex, 16), inode: Number(fields[9]) });
    }
  }
  return listeners;
}

/** Socket inodes among the pid's open fds. */
export async function socketInodes(pid: number): Promise<Set<number>> {
  const inodes = new Set<number>();
  let fds: string[];
  try {
    fds = await fs.readdir(`/proc/${pid}/fd`);
  } catch {
    return inodes;
  }
  await Promise.all(
    fds.map(async (fd) => {
      try {
        const target = await fs.readlink(`/proc/${pid}/fd/${fd}`);
        const match = /^socket:\[(\d+)\]$/.exec(target);
        if (match) inodes.add(Number(match[1]));
      } catch {
        /* closed meanwhile */
      }
    }),
  );
  return inodes;
}

/** Loopback listeners that belong to `pid` itself. */
export async function ownLoopbackListeners(pid: number): Promise<Listener[]> {
  const [listeners, inodes] = await Promise.all([listeningSockets(pid), socketInodes(pid)]);
  return listeners.filter((l) => inodes.has(l.inode) && (l.address === '127.0.0.1' || l.address === '::1'));
}

export interface InspectorTarget {
  readonly port: number;
  readonly webSocketUrl: string;
}

/** The inspector's debugger URL if `port` serves one, else null. */
export function probeInspector(port: number, timeoutMs = 1000): Promise<InspectorTarget | null> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/json/list', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
        if (body.length > 1 << 20) req.destroy();
      });
      res.on('end', () => {
        try {
          const targets = JSON.parse(body) as { webSocketDebuggerUrl?: string }[];
          const url = Array.isArray(targets) ? targets.find((t) => typeof t.webSocketDebuggerUrl === 'string')?.webSocketDebuggerUrl : undefined;
          resolve(url ? { port, webSocketUrl: url } : null);
        } catch {
          resolve(null);
        }
      });
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
    req.end();
  });
}

/**
 * The inspector `pid` serves now, if any: only on a listener that pid owns,
 * the default port first. Other listeners (maybe the program's own HTTP
 * server on loopback) are asked only if that one is not it; `skip` leaves
 * out ports known not to be the inspector.
 */
export async function findInspector(pid: number, defaultPort: number, skip: ReadonlySet<number> = new Set()): Promise<InspectorTarget | null> {
  const listeners = (await ownLoopbackListeners(pid)).filter((l) => !skip.has(l.port));
  listeners.sort((a, b) => Number(b.port === defaultPort) - Number(a.port === defaultPort));
  for (const listener of listeners) {
    const found = await probeInspector(listener.port);
    if (found) return found;
  }
  return null;
}

/** The pid that holds a listener on `port`, or null: scans /proc, only for an error message. */
export async function portHolder(port: number, except: number): Promise<number | null> {
  const listener = (await listeningSockets(except)).find((l) => l.port === port);
  if (!listener) return null;
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === except) continue;
    if ((await socketInodes(Number(entry))).has(listener.inode)) return Number(entry);
  }
  return null;
}
