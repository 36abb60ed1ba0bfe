/**
 * Shared constants of the Socket.IO layer. The Redis adapter (api processes) and the Redis emitter
 * (every process) must agree on the channel key, so both derive it from QUEUE_NAME here: several
 * deployments or test runs sharing one Redis never see each other's events.
 */

/** Pub/sub channel key of the Socket.IO Redis adapter and emitter for a deployment. */
export const socketIoKey = (queueName: string): string => `socket.io#${queueName}`;

/** Largest accepted client → server packet (Socket.IO `maxHttpBufferSize`). */
export const SOCKET_MAX_HTTP_BUFFER_BYTES = 16 * 1024;

/** A client sending more than this many packets within one second is disconnected. */
export const SOCKET_FLOOD_MAX_PACKETS_PER_SECOND = 20;

/** Tokens longer than this are refused without being parsed. */
export const SOCKET_MAX_TOKEN_LENGTH = 4096;
