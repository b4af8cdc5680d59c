// Checks driftline's wire format (Avro single-object encoding) against Apache Avro for Java.
// See README.md in this folder for how to build and run it. Modes:
//   fingerprints SCHEMA_DIR                 one JSON line per schema (current *.avsc and history/*.avsc)
//   decode SCHEMA_DIR DUMP_DIR OUT.jsonl    decode DUMP_DIR/<topic>/*.bin with BinaryMessageDecoder
//   encode SCHEMA_DIR CASES.jsonl OUT_DIR   encode each case with BinaryMessageEncoder to OUT_DIR/<name>.bin
//                                           (prints each writer schema's fingerprint, one JSON line per case)
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.generic.GenericRecordBuilder;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.message.BinaryMessageEncoder;

public class AvroWireCheck {
  static final ObjectMapper MAPPER =
      new ObjectMapper().enable(com.fasterxml.jackson.core.JsonParser.Feature.ALLOW_NON_NUMERIC_NUMBERS);
  static final JsonNodeFactory F = JsonNodeFactory.instance;
  static final Map<String, String> TOPIC_RECORDS =
      Map.of(
          "features", "FeatureEvent",
          "labels", "Label",
          "predictions", "Prediction",
          "training", "TrainingExample",
          "models", "ModelRelease",
          "drift", "DriftEvent",
          "deadletter", "DeadLetter",
          "control", "ControlCommand");

  public static void main(String[] args) throws Exception {
    switch (args[0]) {
      case "fingerprints" -> fingerprints(Paths.get(args[1]));
      case "decode" -> decode(Paths.get(args[1]), Paths.get(args[2]), Paths.get(args[3]));
      case "encode" -> encode(Paths.get(args[1]), Paths.get(args[2]), Paths.get(args[3]));
      default -> throw new IllegalArgumentException("unknown mode " + args[0]);
    }
  }

  static Schema parse(Path path) throws Exception {
    return new Schema.Parser().parse(path.toFile()); // a fresh parser: history/ repeats the names
  }

  static List<Path> schemaFiles(Path dir) throws Exception {
    List<Path> out = new ArrayList<>();
    for (Path d : List.of(dir, dir.resolve("history"))) {
      if (!Files.isDirectory(d)) continue;
      try (Stream<Path> s = Files.list(d)) {
        out.addAll(s.filter(p -> p.toString().endsWith(".avsc")).sorted().collect(Collectors.toList()));
      }
    }
    return out;
  }

  static String leHex(long fp) {
    byte[] b = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(fp).array();
    StringBuilder sb = new StringBuilder();
    for (byte x : b) sb.append(String.format("%02x", x));
    return sb.toString();
  }

  static void fingerprints(Path dir) throws Exception {
    for (Path p : schemaFiles(dir)) {
      Schema s = parse(p);
      long fp = SchemaNormalization.parsingFingerprint64(s);
      ObjectNode o = F.objectNode();
      o.put("file", dir.relativize(p).toString());
      o.put("name", s.getFullName());
      o.put("fingerprint", leHex(fp));
      o.put("long", fp);
      o.put("canonical", SchemaNormalization.toParsingForm(s));
      System.out.println(MAPPER.writeValueAsString(o));
    }
  }

  static Map<String, BinaryMessageDecoder<GenericRecord>> decoders(Path dir) throws Exception {
    Map<String, BinaryMessageDecoder<GenericRecord>> out = new LinkedHashMap<>();
    for (String name : TOPIC_RECORDS.values()) {
      Schema current = parse(dir.resolve(name + ".avsc"));
      BinaryMessageDecoder<GenericRecord> dec = new BinaryMessageDecoder<>(GenericData.get(), current);
      Path old = dir.resolve("history").resolve(name + ".avsc");
      if (Files.exists(old)) dec.addSchema(parse(old));
      out.put(name, dec);
    }
    return out;
  }

  static void decode(Path dir, Path dump, Path outFile) throws Exception {
    Map<String, BinaryMessageDecoder<GenericRecord>> decs = decoders(dir);
    List<String> lines = new ArrayList<>();
    List<Path> topics;
    try (Stream<Path> s = Files.list(dump)) {
      topics = s.filter(Files::isDirectory).sorted().collect(Collectors.toList());
    }
    for (Path t : topics) {
      String topic = t.getFileName().toString();
      String record = TOPIC_RECORDS.get(topic);
      if (record == null) continue;
      List<Path> files;
      try (Stream<Path> s = Files.list(t)) {
        files = s.filter(p -> p.toString().endsWith(".bin")).sorted().collect(Collectors.toList());
      }
      for (Path f : files) {
        ObjectNode o = F.objectNode();
        o.put("topic", topic);
        o.put("file", f.getFileName().toString());
        byte[] data = Files.readAllBytes(f);
        try {
          GenericRecord r = decs.get(record).decode(data);
          o.put("ok", true);
          o.set("value", toJson(r));
        } catch (Exception e) {
          o.put("ok", false);
          o.put("error", e.getClass().getSimpleName() + ": " + e.getMessage());
        }
        lines.add(MAPPER.writeValueAsString(o));
      }
    }
    Files.write(outFile, lines, StandardCharsets.UTF_8);
    System.out.println("decoded " + lines.size() + " records into " + outFile);
  }

  static void encode(Path dir, Path cases, Path outDir) throws Exception {
    Files.createDirectories(outDir);
    for (String line : Files.readAllLines(cases, StandardCharsets.UTF_8)) {
      if (line.isBlank()) continue;
      JsonNode c = MAPPER.readTree(line);
      JsonNode sch = c.get("schema");
      Schema schema =
          sch.isTextual()
              ? parse(dir.resolve(sch.textValue()))
              : new Schema.Parser().parse(MAPPER.writeValueAsString(sch));
      GenericRecord r = (GenericRecord) fromJson(schema, c.get("value"));
      byte[] out;
      if (c.path("blocking").asBoolean(false)) {
        // The same record through a BlockingBinaryEncoder: maps in several blocks, each with a negative count
        // and its byte size (the Avro spec allows both; BinaryMessageEncoder never writes them).
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        bytes.write(new byte[] {(byte) 0xC3, 0x01});
        bytes.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN)
            .putLong(SchemaNormalization.parsingFingerprint64(schema)).array());
        BinaryEncoder be = new EncoderFactory().configureBlockSize(64).blockingBinaryEncoder(bytes, null);
        new GenericDatumWriter<GenericRecord>(schema).write(r, be);
        be.flush();
        out = bytes.toByteArray();
      } else {
        BinaryMessageEncoder<GenericRecord> enc = new BinaryMessageEncoder<>(GenericData.get(), schema);
        ByteBuffer buf = enc.encode(r);
        out = new byte[buf.remaining()];
        buf.get(out);
      }
      Files.write(outDir.resolve(c.get("name").textValue() + ".bin"), out);
      long fp = SchemaNormalization.parsingFingerprint64(schema);
      ObjectNode o = F.objectNode();
      o.put("case", c.get("name").textValue());
      o.put("fingerprint", leHex(fp));
      o.put("long", fp);
      System.out.println(MAPPER.writeValueAsString(o));
    }
  }

  // JSON value -> Avro datum for the schema; a union's branch follows the JSON type (int -> long, float -> double).
  static Object fromJson(Schema s, JsonNode n) {
    switch (s.getType()) {
      case RECORD:
        GenericRecordBuilder b = new GenericRecordBuilder(s);
        for (Schema.Field f : s.getFields()) {
          if (n.has(f.name())) b.set(f, fromJson(f.schema(), n.get(f.name()))); // absent: the default
        }
        return b.build();
      case MAP:
        Map<String, Object> m = new LinkedHashMap<>();
        n.fields().forEachRemaining(e -> m.put(e.getKey(), fromJson(s.getValueType(), e.getValue())));
        return m;
      case UNION:
        Schema.Type want =
            n.isNull() ? Schema.Type.NULL
            : n.isBoolean() ? Schema.Type.BOOLEAN
            : n.isIntegralNumber() ? Schema.Type.LONG
            : n.isFloatingPointNumber() ? Schema.Type.DOUBLE
            : n.isTextual() ? Schema.Type.STRING
            : Schema.Type.MAP;
        for (Schema branch : s.getTypes()) {
          if (branch.getType() == want) return fromJson(branch, n);
        }
        if (want == Schema.Type.STRING) {
          for (Schema branch : s.getTypes())
            if (branch.getType() == Schema.Type.BYTES) return fromJson(branch, n);
        }
        throw new IllegalArgumentException("no branch of " + s + " for " + n);
      case STRING:
        return n.textValue();
      case BYTES:
        return ByteBuffer.wrap(Base64.getDecoder().decode(n.textValue()));
      case LONG:
        return n.longValue();
      case INT:
        return n.intValue();
      case DOUBLE:
        return n.doubleValue();
      case BOOLEAN:
        return n.booleanValue();
      case NULL:
        return null;
      default:
        throw new IllegalArgumentException("unsupported " + s.getType());
    }
  }

  // Avro datum -> JSON by its Java type (bytes as base64, as `driftline tail --json` prints them).
  static JsonNode toJson(Object v) {
    if (v == null) return F.nullNode();
    if (v instanceof GenericRecord r) {
      ObjectNode o = F.objectNode();
      for (Schema.Field f : r.getSchema().getFields()) o.set(f.name(), toJson(r.get(f.pos())));
      return o;
    }
    if (v instanceof Map<?, ?> m) {
      ObjectNode o = F.objectNode();
      for (Map.Entry<?, ?> e : m.entrySet()) o.set(e.getKey().toString(), toJson(e.getValue()));
      return o;
    }
    if (v instanceof CharSequence cs) return F.textNode(cs.toString());
    if (v instanceof ByteBuffer bb) {
      ByteBuffer d = bb.duplicate();
      byte[] b = new byte[d.remaining()];
      d.get(b);
      return F.textNode(Base64.getEncoder().encodeToString(b));
    }
    if (v instanceof Long l) return F.numberNode(l);
    if (v instanceof Integer i) return F.numberNode(i);
    if (v instanceof Double d) return F.numberNode(d);
    if (v instanceof Boolean b) return F.booleanNode(b);
    throw new IllegalArgumentException("unexpected datum " + v.getClass());
  }
}
