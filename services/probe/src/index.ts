export {};
export { createService } from "./service.js";
