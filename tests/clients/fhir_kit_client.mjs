// fhir-kit-client (npm) against a Yidang server: node fhir_kit_client.mjs BASE_URL TAG
// Prints one JSON object with what each step saw; the Python test asserts on it.
import { Client } from 'fhir-kit-client';

const [baseUrl, tag] = process.argv.slice(2);
const client = new Client({ baseUrl });
const system = 'urn:oid:2.16.156.10011.1.3';
const out = {};

const created = await client.create({
  resourceType: 'Patient',
  body: { resourceType: 'Patient', name: [{ family: tag, given: ['Kit'] }], identifier: [{ system, value: tag }] },
});
out.createdId = created.id;
out.readFamily = (await client.read({ resourceType: 'Patient', id: created.id })).name[0].family;

const again = await client.create({
  resourceType: 'Patient',
  body: { resourceType: 'Patient', identifier: [{ system, value: tag }] },
  options: { headers: { 'If-None-Exist': `identifier=${system}|${tag}` } },
});
out.conditionalCreateId = again.id;

const updated = await client.update({
  resourceType: 'Patient',
  searchParams: { identifier: `${system}|${tag}` },
  body: { resourceType: 'Patient', identifier: [{ system, value: tag }], name: [{ family: tag }], gender: 'female' },
});
out.conditionalUpdateId = updated.id;
out.conditionalUpdateGender = updated.gender;

for (let i = 0; i < 11; i++) {
  await client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', name: [{ family: tag, given: [`n${i}`] }] } });
}
let page = await client.search({ resourceType: 'Patient', searchParams: { family: tag, _count: 5 } });
const ids = new Set();
let pages = 0;
while (page) {
  pages += 1;
  for (const e of page.entry || []) ids.add(e.resource.id);
  page = await client.nextPage({ bundle: page });
}
out.pagedIds = ids.size;
out.pages = pages;

const tx = await client.transaction({
  body: {
    resourceType: 'Bundle', type: 'transaction',
    entry: [
      { fullUrl: 'urn:uuid:0b1e5a52-0000-4000-8000-000000000001',
        resource: { resourceType: 'Patient', name: [{ family: `${tag}-tx` }] }, request: { method: 'POST', url: 'Patient' } },
      { resource: { resourceType: 'Observation', status: 'final', code: { text: 'pulse' },
                    subject: { reference: 'urn:uuid:0b1e5a52-0000-4000-8000-000000000001' } },
        request: { method: 'POST', url: 'Observation' } },
    ],
  },
});
out.transactionStatuses = tx.entry.map((e) => e.response.status.slice(0, 3));

try {
  await client.read({ resourceType: 'Patient', id: 'does-not-exist-' + tag });
  out.missing = 'found';
} catch (error) {
  out.missing = error.response ? error.response.status : String(error);
}
console.log(JSON.stringify(out));
