// The relay's DKIM signing: config schema, key loading, streaming body hash, signing.
export { dkimSchema, dkimKeySchema, DEFAULT_SIGNED_HEADERS, type DkimConfig, type DkimConfigInput, type DkimKeyConfig } from './schema.ts';
export { loadDkimKeys, loadDkimKey, dkimTxtRecord, dkimTxtStrings, DkimKeyError, type LoadedKey, type DkimAlgorithm } from './keys.ts';
export { DkimBodyHasher, DkimInputError, DEFAULT_MAX_HEADER_BYTES, type HashedMessage } from './body-hasher.ts';
export { signMessage, DkimSignError, type SignMessageOptions } from './signer.ts';
