/**
 * A campaigner in its own process, for failover tests: `node campaign-child.js PORT NAME VALUE TTL`
 * campaigns with the etcd3 npm client (its lease of TTL seconds kept alive by the client), prints
 * "elected" once it leads, and leads until it is killed.
 */
import { Etcd3 } from 'etcd3';

async function main(): Promise<void> {
  const [port, name, value, ttl] = process.argv.slice(2);
  const client = new Etcd3({ hosts: `127.0.0.1:${port}` });
  const campaign = client.election(name!, Number(ttl)).campaign(value!);
  campaign.on('error', (err) => {
    process.stderr.write(`campaign error: ${err.message}\n`);
    process.exit(1);
  });
  await campaign.wait();
  process.stdout.write('elected\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`${String(err)}\n`);
  process.exit(1);
});
