// the old backends import the moved helper from here until each is ported onto core/
export {sortInstances} from './core/diff.js'
