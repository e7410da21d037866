// A keep-alive HTTP client for driving the service fixtures from tests.
import { Agent, get } from 'node:http';

export class Client {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 4 });

  constructor(readonly port: number) {}

  /** GET `path` on 127.0.0.1 and resolve with the status and body. */
  get(path: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const request = get({ host: '127.0.0.1', port: this.port, path, agent: this.agent }, (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
        response.on('error', reject);
      });
      request.on('error', reject);
    });
  }

  async json<T>(path: string): Promise<T> {
    const { status, body } = await this.get(path);
    if (status >= 400) throw new Error(`GET ${path}: ${status} ${body}`);
    return JSON.parse(body) as T;
  }

  /** Closes the kept-alive connections, so the server's connection tasks end. */
  close(): void {
    this.agent.destroy();
  }
}
