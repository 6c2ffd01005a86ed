// The one way a zod error becomes text for people: one line per problem, led by the path
// of the field ("queue.maxLifetime: ..."), so a config file, a CLI check and an operator
// status message all point at the same line. A misspelt key is named as a field of its own
// ("ratelimits: unknown field"), not as a problem of the object around it.
import type { z } from 'zod';

type Path = readonly PropertyKey[];

const joinPath = (path: Path) => (path.length ? path.map(String).join('.') : '(root)');

export function formatIssues(error: z.ZodError, prefix = ''): string[] {
  return error.issues.flatMap((issue) => {
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => `${prefix}${joinPath([...issue.path, key])}: unknown field (check its spelling and level)`);
    }
    return [`${prefix}${joinPath(issue.path)}: ${issue.message}`];
  });
}
