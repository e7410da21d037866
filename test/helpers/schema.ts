// The documented snapshot schema (docs/snapshot.schema.json), compiled once.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { PACKAGE_ROOT } from '../../src/paths.js';

const schema = JSON.parse(readFileSync(resolve(PACKAGE_ROOT, 'docs/snapshot.schema.json'), 'utf8'));
const ajv = new Ajv2020({ allErrors: true, strict: false });
(addFormats as unknown as (a: Ajv2020) => void)(ajv);
const validate = ajv.compile(schema);

/** null when `document` conforms, else what is wrong with it. */
export function schemaErrors(document: unknown): string | null {
  return validate(document) ? null : ajv.errorsText(validate.errors);
}
