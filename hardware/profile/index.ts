/** The device-profile API: types, loading and the catalogue, schema helpers, placement. */
export {
  type Catalogue,
  catalogueDir,
  catalogueOf,
  checkProfileText,
  findCatalogueDir,
  formatProfileIssue,
  loadCatalogue,
  loadProfileFile,
  loadProfileText,
  ProfileError,
  type ProfileIssue,
  UnknownProfileError,
} from './load.js';
export { type PlaceOptions, placeBarriers, placeProfile } from './place.js';
export {
  closest,
  POINT_KEYS,
  PROFILE_KEYS,
  type SchemaProblem,
  type ValidateOptions,
  validateProfile,
} from './schema.js';
export * from './types.js';
