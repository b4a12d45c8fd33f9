// Text files imported as strings (Bun's `with { type: "text" }`), embedded by `bun build --compile` too.
declare module "*.txt" {
  const content: string;
  export default content;
}
