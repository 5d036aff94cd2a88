/** Container IDs become directory names under the state root: only a safe alphabet, never . or .. */
import { InvalidIdError } from '../errors';

const ID = /^[A-Za-z0-9_.+-]+$/;
export const MAX_ID_LENGTH = 1024;

export function validateId(id: string): void {
  if (typeof id !== 'string' || id.length === 0) throw new InvalidIdError(String(id), 'empty');
  if (id.length > MAX_ID_LENGTH) throw new InvalidIdError(id.slice(0, 32) + '…', `longer than ${MAX_ID_LENGTH} characters`);
  if (id === '.' || id === '..') throw new InvalidIdError(id, 'names a directory, not a container');
  if (!ID.test(id)) throw new InvalidIdError(id, 'only letters, digits and _ . + - are allowed');
}
