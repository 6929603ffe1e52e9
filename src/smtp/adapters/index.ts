/** The MX's ports wired to the real modules: the key store and the recryption core. */
export { keyStoreDirectory, type KeyStoreDirectoryOptions } from './keystore-directory.js';
export { recryptEncryptor, type RecryptEncryptorOptions } from './recrypt-encryptor.js';
