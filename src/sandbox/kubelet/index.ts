// The sandbox kubelet's library API: start one in this process, or clean up after one that crashed.
export { startKubelet, cleanupKubelet, type Kubelet, type KubeletOptions } from './kubelet.js';
export { imageRepository, type ImageEntry } from './images.js';
