import { InitialSchema1764370000000 } from './1764370000000-InitialSchema';
import { CompleteTaskFunction1764380000000 } from './1764380000000-CompleteTaskFunction';
import { EnqueueFunction1764390500000 } from './1764390500000-EnqueueFunction';
import { SessionsAndApiKeys1765000000000 } from './1765000000000-SessionsAndApiKeys';
import { Projects1765100000000 } from './1765100000000-Projects';
import { ResultVersions1765200000000 } from './1765200000000-ResultVersions';
import { StorageSweep1765300000000 } from './1765300000000-StorageSweep';
import { EnqueueBudget1765400000000 } from './1765400000000-EnqueueBudget';
import { EnqueuePath1765500000000 } from './1765500000000-EnqueuePath';
import { WorkerWrites1765600000000 } from './1765600000000-WorkerWrites';
import { EnqueueProbe1765700000000 } from './1765700000000-EnqueueProbe';
import { WorkerWritesSetBased1765800000000 } from './1765800000000-WorkerWritesSetBased';

/** Every migration, in order. Listed explicitly so ts (tests) and js (build) load the same set. */
export const ALL_MIGRATIONS = [
  InitialSchema1764370000000,
  CompleteTaskFunction1764380000000,
  EnqueueFunction1764390500000,
  SessionsAndApiKeys1765000000000,
  Projects1765100000000,
  ResultVersions1765200000000,
  StorageSweep1765300000000,
  EnqueueBudget1765400000000,
  EnqueuePath1765500000000,
  WorkerWrites1765600000000,
  EnqueueProbe1765700000000,
  WorkerWritesSetBased1765800000000,
];
