// java-threads: several Java threads with their own counters and a synchronized shared map.
// On SIGTERM a shutdown hook stops them, checks their state and prints PASS or FAIL.
import java.util.HashMap;
import java.util.Map;

public class Main {
    static volatile boolean stop = false;
    static final long[] counts = new long[6];
    static final Map<Integer, String> shared = new HashMap<>();

    public static void main(String[] args) throws Exception {
        Thread[] threads = new Thread[6];
        for (int i = 0; i < threads.length; i++) {
            final int k = i;
            threads[i] = new Thread(() -> {
                ThreadLocal<String> mine = ThreadLocal.withInitial(() -> "thread-" + k);
                while (!stop) {
                    counts[k]++;
                    if (counts[k] % 100000 == 0) {
                        synchronized (shared) { shared.put(k, mine.get()); }
                    }
                }
            }, "worker-" + i);
            threads[i].start();
        }
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            stop = true;
            boolean ok = true;
            for (Thread t : threads) {
                try { t.join(); } catch (InterruptedException e) { ok = false; }
            }
            for (int i = 0; i < counts.length; i++) ok &= counts[i] > 0;
            synchronized (shared) {
                for (Map.Entry<Integer, String> e : shared.entrySet()) ok &= e.getValue().equals("thread-" + e.getKey());
            }
            System.out.println(ok ? "PASS" : "FAIL");
            System.out.flush();
        }));
        System.out.println("READY");
        System.out.flush();
        while (!stop) Thread.sleep(10);
    }
}
