export {configPath, emptyConfig, loadConfig, saveConfig, type SvcConfig} from './file.js'
export {
  activeProfile,
  type ConfigRow,
  configuredValues,
  DEFAULT_PROFILE_KEY,
  displayValue,
  getValue,
  isSecretKey,
  listRows,
  setValue,
  unsetValue,
  validateKey,
  validateProfileName,
} from './settings.js'
