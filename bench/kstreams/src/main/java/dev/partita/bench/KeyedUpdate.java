package dev.partita.bench;

import java.nio.charset.StandardCharsets;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;

/**
 * The Kafka Streams peer of Partita's benchmark: for each command on the
 * input topic (key: subject, value: {"by":N}), read the subject's counter
 * {"n":M} from a persistent (RocksDB) store with a changelog, add, write it
 * back. The same keyed update as the raw goka processor in bench/.
 *
 * <pre>
 * process BOOTSTRAP TOPIC APP_ID STATE_DIR COMMANDS  processes COMMANDS records,
 *     prints "processed N ms"
 * restore BOOTSTRAP TOPIC APP_ID STATE_DIR           starts on an empty state
 *     dir, prints "restored N ms" once the store is restored and running
 * </pre>
 */
public final class KeyedUpdate {
    static final String STORE = "counters";

    public static void main(String[] args) throws Exception {
        String mode = args[0], bootstrap = args[1], topic = args[2], appId = args[3], stateDir = args[4];
        long expected = args.length > 5 ? Long.parseLong(args[5]) : 0;
        AtomicLong processed = new AtomicLong();

        StreamsBuilder builder = new StreamsBuilder();
        builder.addStateStore(Stores.keyValueStoreBuilder(
                Stores.persistentKeyValueStore(STORE), Serdes.String(), Serdes.ByteArray()));
        builder.stream(topic, Consumed.with(Serdes.String(), Serdes.ByteArray()))
                .process(() -> new Update(processed), STORE);

        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 2); // the machine's cores
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
        p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        p.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");

        CountDownLatch running = new CountDownLatch(1);
        KafkaStreams streams = new KafkaStreams(builder.build(), p);
        streams.setStateListener((now, before) -> {
            if (now == KafkaStreams.State.RUNNING) {
                running.countDown();
            }
        });
        long start = System.nanoTime();
        streams.start();
        try {
            if (mode.equals("restore")) {
                if (!running.await(10, TimeUnit.MINUTES)) {
                    throw new IllegalStateException("not running after 10 minutes");
                }
                System.out.println("restored " + ms(start));
                return;
            }
            while (processed.get() < expected) {
                if (System.nanoTime() - start > TimeUnit.MINUTES.toNanos(15)) {
                    throw new IllegalStateException("only " + processed.get() + " of " + expected + " in 15 minutes");
                }
                Thread.sleep(10);
            }
            System.out.println("processed " + ms(start));
        } finally {
            streams.close();
        }
    }

    static long ms(long start) {
        return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
    }

    static final class Update implements Processor<String, byte[], Void, Void> {
        final AtomicLong processed;
        KeyValueStore<String, byte[]> store;

        Update(AtomicLong processed) {
            this.processed = processed;
        }

        @Override
        public void init(ProcessorContext<Void, Void> context) {
            store = context.getStateStore(STORE);
        }

        @Override
        public void process(Record<String, byte[]> r) {
            long by = number(r.value(), "\"by\":");
            byte[] old = store.get(r.key());
            long n = (old == null ? 0 : number(old, "\"n\":")) + by;
            store.put(r.key(), ("{\"n\":" + n + "}").getBytes(StandardCharsets.UTF_8));
            processed.incrementAndGet();
        }
    }

    /** The integer after field in a flat JSON object; 0 when absent. */
    static long number(byte[] json, String field) {
        String s = new String(json, StandardCharsets.UTF_8);
        int i = s.indexOf(field);
        if (i < 0) {
            return 0;
        }
        i += field.length();
        while (i < s.length() && s.charAt(i) == ' ') {
            i++;
        }
        int j = i;
        if (j < s.length() && s.charAt(j) == '-') {
            j++;
        }
        while (j < s.length() && Character.isDigit(s.charAt(j))) {
            j++;
        }
        return j > i ? Long.parseLong(s.substring(i, j)) : 0;
    }
}
