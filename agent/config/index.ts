export { ConfigError, type ConfigIssue, EX_CONFIG, formatIssue, formatIssues } from './issues.js';
export {
  type CheckResult,
  type ConfigLoader,
  checkConfigFile,
  createConfigLoader,
  type LoadOptions,
  loadConfig,
} from './loader.js';
export { configJsonSchema, renderConfigReference } from './reference.js';
export { type AgentConfig, agentConfigSchema } from './schema.js';
export { FilePath, Secret, Section, StringEnum } from './schema-kit.js';
export { SecretValue } from './secret.js';
