/**
 * The generated benchmark's world: object categories (with the COCO
 * `supercategory` that splits RefCOCO-like testA from testB), named colours, and
 * the small amount of "world knowledge" the ReasonSeg-like family asks about.
 *
 * Mirrors the category structure of RefCOCO (Yu et al. 2016): testA targets are
 * people, testB targets are other objects. Here the "person-like" family is
 * supercategory `figure`, the rest is supercategory `shape`.
 */

/** RefCOCO testA = person-like targets, testB = other objects. */
export type Supercategory = 'figure' | 'shape';

export interface CategoryInfo {
  /** COCO category id written to instances.json (1-based, stable across versions). */
  id: number;
  name: string;
  plural: string;
  supercategory: Supercategory;
  /** Number of corners, for "the shape with the most corners"; null where it is debatable (heart, figures). */
  corners: number | null;
  /** World-knowledge descriptions for the ReasonSeg-like family ("the shape of a stop sign"). */
  knowledge: Array<{ phrase: string; fact: string }>;
}

/** All categories, in COCO id order. */
export const CATEGORIES: readonly CategoryInfo[] = [
  { id: 1, name: 'person', plural: 'people', supercategory: 'figure', corners: null, knowledge: [
    // not "looks like a human": snowmen and robots do too
    { phrase: 'the figure that is a human being', fact: 'A person is a human being.' },
    { phrase: 'the figure of a man or a woman', fact: 'A person is a man or a woman.' },
  ] },
  { id: 2, name: 'snowman', plural: 'snowmen', supercategory: 'figure', corners: null, knowledge: [
    { phrase: 'the figure that would melt on a sunny day', fact: 'A snowman melts in the sun.' },
    { phrase: 'the figure made of two balls of snow', fact: 'A snowman is made of two balls of snow.' },
  ] },
  { id: 3, name: 'robot', plural: 'robots', supercategory: 'figure', corners: null, knowledge: [
    { phrase: 'the figure that is a machine', fact: 'A robot is a machine.' },
    { phrase: 'the figure that runs on batteries', fact: 'A robot runs on batteries.' },
  ] },
  { id: 4, name: 'ghost', plural: 'ghosts', supercategory: 'figure', corners: null, knowledge: [
    { phrase: 'the figure that might haunt a house', fact: 'A ghost haunts houses.' },
    { phrase: 'the figure that says boo', fact: 'A ghost says boo.' },
  ] },
  { id: 5, name: 'circle', plural: 'circles', supercategory: 'shape', corners: 0, knowledge: [
    { phrase: 'the shape of a coin', fact: 'A coin is round like a circle.' },
    { phrase: 'the shape of a full moon', fact: 'A full moon looks like a circle.' },
  ] },
  { id: 6, name: 'square', plural: 'squares', supercategory: 'shape', corners: 4, knowledge: [
    { phrase: 'the shape of a chessboard', fact: 'A chessboard is a square.' },
    // not "four equal sides": a diamond has them too
    { phrase: 'the shape of a dice face', fact: 'A dice face is a square.' },
  ] },
  { id: 7, name: 'triangle', plural: 'triangles', supercategory: 'shape', corners: 3, knowledge: [
    { phrase: 'the shape of a slice of pizza', fact: 'A slice of pizza is a triangle.' },
    { phrase: 'the shape with three sides', fact: 'A triangle has three sides.' },
  ] },
  { id: 8, name: 'star', plural: 'stars', supercategory: 'shape', corners: 10, knowledge: [
    { phrase: 'the shape that twinkles in the night sky', fact: 'Stars twinkle in the night sky.' },
    { phrase: 'the shape with five points', fact: 'A star has five points.' },
  ] },
  { id: 9, name: 'heart', plural: 'hearts', supercategory: 'shape', corners: null, knowledge: [
    { phrase: 'the shape people draw to show love', fact: 'A heart shows love.' },
    { phrase: 'the shape on a valentine card', fact: 'Valentine cards carry hearts.' },
  ] },
  { id: 10, name: 'hexagon', plural: 'hexagons', supercategory: 'shape', corners: 6, knowledge: [
    { phrase: 'the shape of a honeycomb cell', fact: 'A honeycomb cell is a hexagon.' },
    { phrase: 'the shape with six sides', fact: 'A hexagon has six sides.' },
  ] },
  { id: 11, name: 'cross', plural: 'crosses', supercategory: 'shape', corners: 12, knowledge: [
    { phrase: 'the shape of a plus sign', fact: 'A plus sign is a cross.' },
    { phrase: 'the shape on a first aid kit', fact: 'A first aid kit shows a cross.' },
  ] },
  { id: 12, name: 'ring', plural: 'rings', supercategory: 'shape', corners: 0, knowledge: [
    { phrase: 'the shape of a doughnut', fact: 'A doughnut is a ring.' },
    { phrase: 'the shape with a hole in the middle', fact: 'A ring has a hole in the middle.' },
  ] },
  { id: 13, name: 'diamond', plural: 'diamonds', supercategory: 'shape', corners: 4, knowledge: [
    { phrase: 'the shape of a kite', fact: 'A kite is a diamond.' },
    { phrase: 'the shape of a square standing on one corner', fact: 'A diamond is a square standing on one corner.' },
  ] },
];

export type CategoryName = string;

const BY_NAME = new Map(CATEGORIES.map((c) => [c.name, c]));

/** Category record by name; throws on an unknown name (a generator bug). */
export function category(name: CategoryName): CategoryInfo {
  const c = BY_NAME.get(name);
  if (!c) throw new Error(`generate: unknown category ${JSON.stringify(name)}`);
  return c;
}

export interface ColourInfo {
  name: string;
  /** sRGB fill; saturated so it stays apart from the muted backgrounds. */
  rgb: [number, number, number];
  knowledge: Array<{ phrase: string; fact: string }>;
}

/** Named object colours (all saturated or very light: backgrounds are muted mid-tones). */
export const COLOURS: readonly ColourInfo[] = [
  { name: 'red', rgb: [220, 36, 36], knowledge: [
    { phrase: 'the colour of a ripe strawberry', fact: 'A ripe strawberry is red.' },
    { phrase: 'the colour of a fire engine', fact: 'A fire engine is red.' },
  ] },
  { name: 'green', rgb: [40, 180, 60], knowledge: [
    { phrase: 'the colour of grass', fact: 'Grass is green.' },
    { phrase: 'the colour of a frog', fact: 'A frog is green.' },
  ] },
  { name: 'blue', rgb: [40, 90, 235], knowledge: [
    { phrase: 'the colour of the sky', fact: 'The sky is blue.' },
    { phrase: 'the colour of the sea', fact: 'The sea is blue.' },
  ] },
  { name: 'yellow', rgb: [250, 220, 30], knowledge: [
    { phrase: 'the colour of a banana', fact: 'A banana is yellow.' },
    { phrase: 'the colour of a lemon', fact: 'A lemon is yellow.' },
  ] },
  { name: 'purple', rgb: [150, 50, 200], knowledge: [
    { phrase: 'the colour of grapes', fact: 'Grapes are purple.' },
    { phrase: 'the colour of an aubergine', fact: 'An aubergine is purple.' },
  ] },
  { name: 'orange', rgb: [250, 140, 20], knowledge: [
    { phrase: 'the colour of a carrot', fact: 'A carrot is orange.' },
    { phrase: 'the colour of a pumpkin', fact: 'A pumpkin is orange.' },
  ] },
  { name: 'white', rgb: [248, 248, 248], knowledge: [
    { phrase: 'the colour of snow', fact: 'Snow is white.' },
    { phrase: 'the colour of milk', fact: 'Milk is white.' },
  ] },
  { name: 'pink', rgb: [250, 130, 200], knowledge: [
    { phrase: 'the colour of a flamingo', fact: 'A flamingo is pink.' },
    { phrase: 'the colour of candy floss', fact: 'Candy floss is pink.' },
  ] },
];

const COLOUR_BY_NAME = new Map(COLOURS.map((c) => [c.name, c]));

/** Colour record by name; throws on an unknown name (a generator bug). */
export function colour(name: string): ColourInfo {
  const c = COLOUR_BY_NAME.get(name);
  if (!c) throw new Error(`generate: unknown colour ${JSON.stringify(name)}`);
  return c;
}

/** English number words for counts and ordinals in sentences. */
export const NUMBER_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten', 'eleven', 'twelve'];
export const ORDINAL_WORDS = ['zeroth', 'first', 'second', 'third', 'fourth', 'fifth', 'sixth', 'seventh', 'eighth'];

/** Words that name an absolute or relative location: banned from RefCOCO+-like sentences. */
export const LOCATION_WORDS = [
  'left', 'right', 'top', 'bottom', 'middle', 'centre', 'center', 'above', 'below', 'under', 'over',
  'upper', 'lower', 'corner', 'leftmost', 'rightmost', 'highest', 'lowest', 'next', 'near', 'nearest',
  'closest', 'beside', 'side', 'first', 'second', 'third',
];
